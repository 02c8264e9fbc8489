// tests/trainer/stage_test.cpp: stages as units, without the trainer loop: the registry,
// one stage step on a batch (what it updates, what it logs, which models it checkpoints),
// and that no model stays gathered after a step.
#include <gtest/gtest.h>

#include "data/datasets.h"
#include "data/text_from_config.h"
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

  explicit StageRig(core::Config c) : cfg(std::move(c)) {
    std::vector<int64_t> fs(cfg.image_or_video_shape.begin() + 1, cfg.image_or_video_shape.end());
    text = data::text_conditioner_from_config(cfg, torch::kCPU);
    updates = std::make_unique<trainer::UpdateRule>(cfg);
    env.reset(new trainer::StageEnv{cfg, dist, torch::kCPU, 0, draws, *text, fs, *updates, 4});
    stage = trainer::make_stage(cfg.distillation_loss, *env);
    ds = data::open_train_dataset(cfg.data_path, fs);
  }

  std::map<std::string, double> step(int64_t step) {
    data::Batch b;
    b.prompts = {ds->prompt(0)};
    if (ds->has_latents()) b.latents = ds->latents(0).unsqueeze(0);
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

}  // namespace
}  // namespace causvid
