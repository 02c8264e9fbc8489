// tests/trainer/stage_test.cpp: stages as units, without the trainer loop: the registry,
// one stage step on a batch (what it updates, what it logs, which models it checkpoints),
// and that no model stays gathered after a step.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/random.h"
#include "data/datasets.h"
#include "data/text_from_config.h"
#include "models/wan/presets.h"
#include "models/wan/wan_model.h"
#include "tests/core/dist_util.h"
#include "tests/test_util.h"
#include "tests/trainer/tiny_world.h"
#include "trainer/stage.h"

namespace causvid {
namespace {
using testing::world;

// A stage with its runtime, as the trainer builds it.
struct StageRig {
  core::Config cfg;
  std::shared_ptr<core::DistContext> dist = std::make_shared<core::DistContext>();
  at::Generator rng = at::make_generator<at::CPUGeneratorImpl>(7);
  core::GeneratorSource draws{rng};
  std::unique_ptr<models::TextConditioner> text;
  std::unique_ptr<trainer::UpdateRule> updates;
  std::unique_ptr<trainer::StageEnv> env;
  std::unique_ptr<trainer::Stage> stage;
  std::shared_ptr<data::TrainDataset> ds;
  int64_t ds_index = 0;  // the dataset row every step trains on

  explicit StageRig(core::Config c, std::shared_ptr<core::DistContext> ctx = nullptr)
      : cfg(std::move(c)) {
    if (ctx) dist = std::move(ctx);
    std::vector<int64_t> fs(cfg.image_or_video_shape.begin() + 1, cfg.image_or_video_shape.end());
    text = data::text_conditioner_from_config(cfg, torch::kCPU);
    updates = std::make_unique<trainer::UpdateRule>(cfg);
    env.reset(new trainer::StageEnv{cfg, dist, torch::kCPU, 0, draws, *text, fs, *updates, 4});
    stage = trainer::make_stage(cfg.distillation_loss, *env);
    ds = data::open_train_dataset(cfg.data_path, fs);
  }

  std::map<std::string, double> step(int64_t step) {
    data::Batch b;
    b.prompts = {ds->prompt(ds_index)};
    if (ds->has_latents()) b.latents = ds->latents(ds_index).unsqueeze(0);
    torch::Tensor cond;
    {
      torch::NoGradGuard ng;
      cond = text->encode(b.prompts).to(torch::kFloat32);
    }
    return stage->step(trainer::StepInput{b, cond, step});
  }
};

std::vector<std::string> names(const std::vector<trainer::ModelState>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m.name);
  return out;
}

TEST(Stage, RegistryListsTheBuiltinsAndRefusesUnknownAndDuplicateNames) {
  const auto reg = trainer::registered_stages();
  for (const char* n : {"dmd", "ode", "diffusion"})
    EXPECT_NE(std::find(reg.begin(), reg.end(), n), reg.end()) << n;
  StageRig rig(world().config("tiny_ode.yaml", "stage_reg", {"data_path=" + world().ode()}));
  testing::expect_error_contains([&] { trainer::make_stage("self_forcing_typo", *rig.env); },
                                 {"distillation_loss", "self_forcing_typo", "dmd", "ode"});
  testing::expect_error_contains(
      [&] { trainer::register_stage("ode", [](trainer::StageEnv& e) { return nullptr; }); },
      {"'ode'", "already registered"});
}

TEST(Stage, OdeStepUpdatesTheGeneratorAndItsEmaAlone) {
  StageRig rig(world().config("tiny_ode.yaml", "stage_ode",
                              {"data_path=" + world().ode(), "ema_weight=0.5", "ema_start_step=0"}));
  EXPECT_EQ(names(rig.stage->checkpoint_states()), std::vector<std::string>{"generator"});
  auto& g = rig.stage->generator();
  const auto before = g.sharded().shard(0).clone();
  auto m = rig.step(0);
  ASSERT_TRUE(m.count("generator_loss") && m.count("generator_grad_norm"));
  EXPECT_GT(m.at("generator_loss"), 0);
  EXPECT_FALSE(torch::equal(before, g.sharded().shard(0))) << "the update did not move the weights";
  // ema = 0.5 * ema + 0.5 * w from the initial weights.
  auto want = 0.5 * before + 0.5 * g.sharded().shard(0);
  EXPECT_TRUE(torch::allclose(g.ema()->shards()[0], want, 1e-6, 1e-7));
}

TEST(Stage, DmdUpdatesTheGeneratorEveryRatioStepsAndLeavesNothingGathered) {
  StageRig rig(world().config("tiny_dmd.yaml", "stage_dmd",
                              {"data_path=" + world().latents(), "dfake_gen_update_ratio=2",
                               "mixed_precision=true"}));
  EXPECT_EQ(names(rig.stage->checkpoint_states()), (std::vector<std::string>{"generator", "critic"}));
  auto& g = rig.stage->generator();
  auto m0 = rig.step(0);
  EXPECT_TRUE(m0.count("generator_loss") && m0.count("dmd_gradient_norm") &&
              m0.count("critic_loss"));
  const auto gen_after0 = g.sharded().shard(0).clone();
  auto m1 = rig.step(1);
  EXPECT_FALSE(m1.count("generator_loss")) << "step 1 of ratio 2 is critic-only";
  EXPECT_TRUE(m1.count("critic_loss"));
  EXPECT_TRUE(torch::equal(gen_after0, g.sharded().shard(0)));
  // Mixed precision on one rank: every gather is a bf16 copy, counted until freed.
  for (auto& ms : rig.stage->checkpoint_states())
    EXPECT_EQ(ms.module->gather_stats().current_bytes, 0) << ms.name << " stayed gathered";
}


// Self-Forcing's DMD on the tiny world: prompts only, the causal generator rolled out from
// noise (3 blocks of 1 frame), generator and critic updated, the (bigger) real score frozen.
core::Config self_forcing_config(const std::string& out, std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"data_path=" + world().prompts(),
                                "distillation_loss=self_forcing",
                                "backward_simulation=true",
                                "denoising_step_list=[1000, 757, 522]",
                                "num_training_frames=3",
                                "dfake_gen_update_ratio=2",
                                "real_model_overrides={dim: 96, num_heads: 3}",
                                "model_kwargs={timestep_shift: 5.0}"};
  o.insert(o.end(), extra.begin(), extra.end());
  return world().config("tiny_dmd.yaml", out, o);
}

TEST(Stage, SelfForcingRollsOutFromPromptsAndUpdatesGeneratorAndCritic) {
  StageRig rig(self_forcing_config("stage_sf"));
  EXPECT_FALSE(rig.stage->needs_latents());
  EXPECT_EQ(names(rig.stage->checkpoint_states()), (std::vector<std::string>{"generator", "critic"}));
  auto models = rig.stage->models();
  ASSERT_EQ(models.size(), 3u);
  EXPECT_EQ(models[1].second->wrap().model()->config().dim, 96)
      << "real_model_overrides did not size the real score";
  EXPECT_EQ(models[0].second->wrap().model()->config().dim, 64);
  EXPECT_DOUBLE_EQ(rig.stage->generator().wrap().scheduler().options().shift, 5.0);
  auto snapshot = [&](int i) { return models[i].second->sharded().shard(0).clone(); };
  const auto g0 = snapshot(0), r0 = snapshot(1), f0 = snapshot(2);
  auto m = rig.step(0);
  for (const char* k : {"generator_loss", "generator_grad_norm", "dmd_gradient_norm",
                        "critic_loss", "critic_grad_norm"})
    EXPECT_TRUE(m.count(k) && std::isfinite(m.at(k))) << k;
  EXPECT_FALSE(torch::equal(g0, snapshot(0))) << "the generator did not move";
  EXPECT_TRUE(torch::equal(r0, snapshot(1))) << "the real score must stay frozen";
  EXPECT_FALSE(torch::equal(f0, snapshot(2))) << "the critic did not move";
  auto m1 = rig.step(1);
  EXPECT_FALSE(m1.count("generator_loss")) << "step 1 of ratio 2 is critic-only";
}

TEST(Stage, SelfForcingLongTuningRollsOutPastTheTrainingLength) {
  // 6 frames with a rolling cache of 2 frames plus a 1-frame sink; DMD on the last 3.
  StageRig rig(self_forcing_config(
      "stage_sf_long", {"long_rollout_frames=6", "long_window=2", "long_sink=1"}));
  auto m = rig.step(0);
  EXPECT_TRUE(m.count("generator_loss") && std::isfinite(m.at("generator_loss")));
}

TEST(Stage, SelfForcingImageToVideoStartsFromTheDataFirstFrameAndReencodesTheWindow) {
  // i2v: the clean latents' first frame is cached first, 3 blocks follow (4 frames), and the
  // window of 3 starts with the VAE re-encoding of the frame before its last 2.
  StageRig rig(self_forcing_config(
      "stage_sf_i2v", {"i2v=true", "data_path=" + world().latents(), "vae_path=" + world().vae()}));
  EXPECT_TRUE(rig.stage->needs_latents());
  auto m = rig.step(0);
  for (const char* k : {"generator_loss", "generator_grad_norm", "critic_loss"})
    EXPECT_TRUE(m.count(k) && std::isfinite(m.at(k))) << k;
}

TEST(Stage, SelfForcingRolloutsPastTheTrainingLengthReencodeTheWindowStart) {
  StageRig rig(self_forcing_config("stage_sf_ntf", {"num_training_frames=6",
                                                    "vae_path=" + world().vae()}));
  for (int64_t step : {0, 1, 2, 3}) {
    auto m = rig.step(step);
    EXPECT_TRUE(m.count("critic_loss") && std::isfinite(m.at("critic_loss"))) << step;
  }
}

TEST(Stage, GradientAccumulationOfTwoMicroBatchesEqualsOneBatchOfTwo) {
  // The ODE stage with replayed trajectory indices: one batch of 2 vs 2 micro-batches of 1
  // holding the same rows give the same update (the loss is a mean over samples; every
  // index < S - 1 so every frame counts).
  auto cfg = world().config("tiny_ode.yaml", "stage_acc", {"data_path=" + world().ode()});
  auto ds = data::open_train_dataset(cfg.data_path, {3, 4, 8, 8});
  const int64_t F = cfg.image_or_video_shape[1];
  auto idx = torch::tensor({0, 1, 2, 1, 0, 2}, torch::kLong).view({2, 3}).slice(1, 0, F);
  auto run = [&](bool accumulate) {
    auto c = cfg;
    std::vector<int64_t> fs(c.image_or_video_shape.begin() + 1, c.image_or_video_shape.end());
    auto text = data::text_conditioner_from_config(c, torch::kCPU);
    trainer::UpdateRule updates(c);
    std::vector<torch::Tensor> draws =
        accumulate ? std::vector<torch::Tensor>{idx.slice(0, 0, 1), idx.slice(0, 1, 2)}
                   : std::vector<torch::Tensor>{idx};
    core::ReplaySource src(draws, "test");
    auto dist = std::make_shared<core::DistContext>();
    trainer::StageEnv env{c, dist, torch::kCPU, 0, src, *text, fs, updates, 4};
    auto stage = trainer::make_stage("ode", env);
    auto encode = [&](const std::vector<std::string>& p) {
      torch::NoGradGuard ng;
      return text->encode(p).to(torch::kFloat32);
    };
    data::Batch both, a, b;
    both.prompts = {ds->prompt(0), ds->prompt(1)};
    both.latents = torch::stack({ds->latents(0), ds->latents(1)});
    a.prompts = {ds->prompt(0)};
    a.latents = ds->latents(0).unsqueeze(0);
    b.prompts = {ds->prompt(1)};
    b.latents = ds->latents(1).unsqueeze(0);
    std::map<std::string, double> m;
    if (accumulate) {
      trainer::StepInput in{a, encode(a.prompts), 0};
      in.more.push_back({&b, encode(b.prompts)});
      m = stage->step(in);
    } else {
      m = stage->step(trainer::StepInput{both, encode(both.prompts), 0});
    }
    EXPECT_EQ(src.used(), src.size());
    return std::make_pair(m, stage->generator().sharded().shard(0).clone());
  };
  auto [m1, w1] = run(false);
  auto [m2, w2] = run(true);
  EXPECT_NEAR(m1.at("generator_loss"), m2.at("generator_loss"), 1e-6);
  EXPECT_NEAR(m1.at("generator_grad_norm"), m2.at("generator_grad_norm"), 1e-5);
  EXPECT_TRUE(torch::allclose(w1, w2, 1e-5, 1e-7));
}


TEST(Stage, TeacherForcingTrainsTheCausalModelOnCleanLatentsWithCleanContext) {
  for (bool tf : {true, false}) {
    StageRig rig(world().config(
        "tiny_dmd.yaml", tf ? "stage_tf" : "stage_df",
        {"data_path=" + world().latents(), "distillation_loss=teacher_forcing",
         std::string("teacher_forcing=") + (tf ? "true" : "false"),
         "noise_augmentation_max_timestep=900", "num_frame_per_block=1",
         "model_kwargs={timestep_shift: 5.0}"}));
    EXPECT_TRUE(rig.stage->needs_latents());
    EXPECT_EQ(names(rig.stage->checkpoint_states()), std::vector<std::string>{"generator"});
    auto& g = rig.stage->generator();
    const auto before = g.sharded().shard(0).clone();
    auto m = rig.step(0);
    EXPECT_TRUE(m.count("generator_loss") && std::isfinite(m.at("generator_loss"))) << tf;
    EXPECT_FALSE(torch::equal(before, g.sharded().shard(0))) << "no update (tf " << tf << ")";
  }
}

}  // namespace
}  // namespace causvid

namespace causvid {
namespace {

// Weights with a live head (init_weights zeroes it, which would make every score zero and
// the DMD gradient with it), written once.
std::string lora_base_weights() {
  const std::string w = world().out("lora_base.safetensors");
  if (std::filesystem::exists(w)) return w;
  auto c = world().config("tiny_dmd.yaml", "lora_base");
  models::WanModel m(models::wan_config(c));
  m->init_weights(5);
  torch::NoGradGuard ng;
  m->head->head->weight.normal_(0, 0.05);
  core::save_safetensors(w, core::state_dict(*m));
  return w;
}

// LoRA training: the base stays frozen (bit-identical), only the adapters move; with the
// critic on LoRA too (lora_critic), and under gradient checkpointing and per-block FSDP
// (the adapters' gradients come from blocks recomputed in backward).
TEST(Stage, LoraTrainsOnlyTheAdaptersOfGeneratorAndCritic) {
  const std::string w = lora_base_weights();
  for (const std::string extra :
       {"gradient_checkpointing=false", "gradient_checkpointing=true",
        "generator_fsdp_wrap_strategy=transformer"}) {
    std::vector<std::string> o = {"data_path=" + world().latents(), "dfake_gen_update_ratio=1",
                                  "dit_path=" + w, "lora_rank=4", "lora_alpha=8",
                                  "lora_critic=true", extra};
    if (extra.find("fsdp") != std::string::npos)  // per-block units: the block runner path
      for (const char* k : {"fake_score_fsdp_wrap_strategy=transformer",
                            "generator_fsdp_transformer_module=WanAttentionBlock",
                            "fake_score_fsdp_transformer_module=WanAttentionBlock"})
        o.push_back(k);
    StageRig rig(world().config("tiny_dmd.yaml", "stage_lora_" + extra, o));
    if (extra.find("fsdp") != std::string::npos)
      ASSERT_TRUE(rig.stage->models()[0].second->sharded().per_unit());
    auto models = rig.stage->models();
    auto& gen = *models[0].second;
    auto& fake = *models[2].second;
    ASSERT_TRUE(gen.lora() && fake.lora()) << extra;
    EXPECT_EQ(names(rig.stage->checkpoint_states()),
              (std::vector<std::string>{"generator_lora", "critic_lora"}));
    const auto base = gen.sharded().shard(0).clone(), fbase = fake.sharded().shard(0).clone();
    const auto a0 = gen.trained().shard(0).clone(), f0 = fake.trained().shard(0).clone();
    rig.step(0);
    auto m = rig.step(1);  // B starts at zero: the second step moves A too
    EXPECT_TRUE(m.count("generator_loss") && std::isfinite(m.at("generator_loss"))) << extra;
    EXPECT_TRUE(torch::equal(base, gen.sharded().shard(0))) << "the base generator moved " << extra;
    EXPECT_TRUE(torch::equal(fbase, fake.sharded().shard(0))) << "the base critic moved " << extra;
    EXPECT_FALSE(torch::equal(a0, gen.trained().shard(0))) << "generator adapters idle " << extra;
    EXPECT_FALSE(torch::equal(f0, fake.trained().shard(0))) << "critic adapters idle " << extra;
    // Every adapter tensor received an update (no gradient path lost).
    for (const auto& p : gen.lora()->named_parameters())
      EXPECT_GT(p.value().abs().sum().item<double>(), 0) << p.key() << " " << extra;
  }
}

}  // namespace
}  // namespace causvid

namespace causvid {
namespace {

// LoRA over two ranks with the base fully sharded: the replicated adapters stay identical on
// both ranks (their gradients are all-reduced) while each rank trains on its own batch.
TEST(Stage, TwoRankLoraKeepsTheAdaptersInStep) {
  std::vector<torch::Tensor> adapters(2);
  lora_base_weights();
  testing::run_ranks(2, [&](std::shared_ptr<core::DistContext> ctx) {
    StageRig rig(world().config("tiny_dmd.yaml", "stage_lora2",
                                {"data_path=" + world().latents(), "dfake_gen_update_ratio=1",
                                 "dit_path=" + lora_base_weights(),
                                 "lora_rank=4", "sharding_strategy=full"}),
                 ctx);
    rig.ds_index = ctx->rank();  // different data on each rank
    rig.step(0);
    rig.step(1);
    adapters[ctx->rank()] = rig.stage->models()[0].second->trained().shard(0).clone();
  });
  ASSERT_TRUE(adapters[0].defined() && adapters[1].defined());
  EXPECT_TRUE(torch::equal(adapters[0], adapters[1]));
}

}  // namespace
}  // namespace causvid
