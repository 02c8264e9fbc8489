// tests/trainer/trainer_test.cpp: the stage trainers at tiny scale (run_training in-process):
// each stage runs a few steps with finite losses and writes the expected files; resume
// equals an uninterrupted run; 2-rank causal DMD over Gloo; bad inputs.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/checksum.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "core/state_dict.h"
#include "core/tensor_io.h"
#include "data/array_lmdb.h"
#include "data/prompt_cache.h"
#include "models/t5/tokenizer.h"
#include "models/t5/umt5.h"
#include "models/wan/wan_loader.h"
#include "models/wan/presets.h"
#include "tests/core/dist_util.h"
#include "trainer/model_export.h"
#include "tests/test_util.h"
#include "tests/trainer/tiny_world.h"
#include "models/wan/lora.h"
#include "trainer/tensorboard.h"
#include "trainer/trainer.h"

namespace causvid {
namespace {
namespace fs = std::filesystem;
using testing::world;
using testing::kPrompts;

trainer::TrainResult train(const core::Config& c, const std::string& resume = "") {
  trainer::TrainOptions o;
  o.quiet = true;
  o.num_samples = 2;
  o.teacher_sample_steps = 4;
  o.resume = resume;
  return trainer::run_training(c, std::make_shared<core::DistContext>(), o);
}

int count_lines(const std::string& path) {
  std::ifstream f(path);
  int n = 0;
  std::string l;
  while (std::getline(f, l)) n += !l.empty();
  return n;
}

void expect_same_weights(const std::string& a, const std::string& b) {
  auto x = core::load_weights(a), y = core::load_weights(b);
  ASSERT_EQ(x.size(), y.size());
  for (const auto& kv : x) {
    ASSERT_TRUE(y.count(kv.first)) << kv.first;
    EXPECT_TRUE(torch::equal(kv.second, y.at(kv.first))) << kv.first;
  }
}

TEST(Trainer, DiffusionStageWritesCheckpointsMetricsSamples) {
  const auto& w = world();
  auto c = w.config("tiny_bidirectional_dmd.yaml", "diff",
                    {"distillation_loss=diffusion", "data_path=" + w.latents(), "max_iters=3",
                     "save_iters=2", "text_dropout=0.5", "ema_weight=0.9"});
  auto r = train(c);
  EXPECT_EQ(r.end_step, 3);
  EXPECT_TRUE(std::isfinite(r.last_metrics.at("generator_loss")));
  EXPECT_GT(r.last_metrics.at("generator_loss"), 0);
  for (const char* d : {"checkpoint_model_000002", "checkpoint_model_000003"}) {
    const fs::path p = fs::path(w.out("diff")) / d;
    EXPECT_TRUE(fs::exists(p / "model.pt")) << p;
    EXPECT_TRUE(fs::exists(p / "trainer_state.json")) << p;
    EXPECT_TRUE(fs::exists(p / "config.yaml")) << p;
  }
  EXPECT_EQ(count_lines(w.out("diff") + "/metrics.jsonl"), 3);
  EXPECT_TRUE(fs::exists(w.out("diff") + "/loss_curves.png"));
  EXPECT_TRUE(fs::exists(w.out("diff") + "/samples/step_000003.png"));
  // TensorBoard: one event file with the scalars of every step and the sample sheets.
  std::string events;
  for (const auto& e : fs::directory_iterator(w.out("diff")))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) events = e.path();
  ASSERT_FALSE(events.empty()) << "no TensorBoard event file";
  auto records = trainer::read_event_records(events);  // CRCs checked
  int losses = 0, images = 0;
  for (const auto& r : records) {
    losses += r.find("generator_loss") != std::string::npos;
    images += r.find("samples") != std::string::npos && r.find("\x89PNG") != std::string::npos;
  }
  EXPECT_NE(records[0].find("brain.Event:2"), std::string::npos);
  EXPECT_EQ(losses, 3);
  EXPECT_EQ(images, 2);  // checkpoints at steps 2 and 3
  EXPECT_EQ(trainer::latest_checkpoint(w.out("diff")),
            (fs::path(w.out("diff")) / "checkpoint_model_000003").string());
  // The checkpoint loads as a generator, and as its EMA.
  models::WanModel m(models::wan_config(c));
  models::load_wan_weights(m, r.last_checkpoint, "generator");
  models::load_wan_weights(m, r.last_checkpoint, "generator_ema");
}

TEST(Trainer, CausalOdeStage) {
  const auto& w = world();
  auto c = w.config("tiny_ode.yaml", "ode", {"data_path=" + w.ode(), "max_iters=2"});
  auto r = train(c);
  EXPECT_EQ(r.end_step, 2);
  EXPECT_TRUE(std::isfinite(r.last_metrics.at("generator_loss")));
  EXPECT_TRUE(fs::exists(fs::path(w.out("ode")) / "checkpoint_model_000002" / "model.pt"));
}

TEST(Trainer, CausalDmdStageAndExport) {
  const auto& w = world();
  auto c = w.config("tiny_dmd.yaml", "dmd", {"data_path=" + w.latents(), "max_iters=2",
                                             "num_frame_per_block=3"});
  auto r = train(c);
  EXPECT_EQ(r.end_step, 2);
  // Step 2 (index 1) is a critic-only step (dfake_gen_update_ratio 5).
  EXPECT_TRUE(r.last_metrics.count("critic_grad_norm"));
  EXPECT_FALSE(r.last_metrics.count("generator_loss"));
  EXPECT_TRUE(std::isfinite(r.last_metrics.at("critic_loss")));
  // Export in CausVid's layout: {"generator", "critic"} with "model." keys.
  const std::string pt = w.out("dmd_export.pt");
  trainer::export_checkpoint(r.last_checkpoint, pt, "causvid", false);
  auto sd = core::load_weights(pt);
  bool has_gen = false, has_critic = false;
  for (const auto& kv : sd) {
    has_gen |= kv.first.rfind("generator.model.blocks.0.", 0) == 0;
    has_critic |= kv.first.rfind("critic.model.blocks.0.", 0) == 0;
  }
  EXPECT_TRUE(has_gen && has_critic);
  const std::string st = w.out("dmd_export.safetensors");
  trainer::export_checkpoint(r.last_checkpoint, st, "safetensors", false);
  models::WanModel m(models::wan_config(c));
  models::load_wan_weights(m, st);
  models::load_wan_weights(m, pt);
}

TEST(Trainer, BidirectionalDmdWithBackwardSimulation) {
  const auto& w = world();
  auto c = w.config("tiny_bidirectional_dmd.yaml", "bidmd",
                    {"data_path=" + w.prompts(), "max_iters=2", "backward_simulation=true"});
  auto r = train(c);
  EXPECT_EQ(r.end_step, 2);
  EXPECT_TRUE(std::isfinite(r.last_metrics.at("critic_loss")));
}

// A 4-step causal DMD run (EMA on, generator every 2nd step) straight through, and the same run
// stopped at its step-2 checkpoint; `between` may alter that checkpoint before the second run
// resumes it with --resume auto. Returns {straight, resumed}.
std::pair<trainer::TrainResult, trainer::TrainResult> straight_and_resumed(
    const std::string& name, const std::function<void(const std::string&)>& between = {},
    const std::vector<std::string>& extra = {}) {
  const auto& w = world();
  std::vector<std::string> o = {"data_path=" + w.latents(), "num_frame_per_block=3",
                                "save_iters=2", "ema_weight=0.5", "dfake_gen_update_ratio=2"};
  o.insert(o.end(), extra.begin(), extra.end());
  auto straight = o, split = o;
  straight.push_back("max_iters=4");
  split.push_back("max_iters=2");
  auto a = train(w.config("tiny_dmd.yaml", name + "_straight", straight));
  auto half = train(w.config("tiny_dmd.yaml", name + "_split", split));
  if (between) between(half.last_checkpoint);
  split.back() = "max_iters=4";
  return {a, train(w.config("tiny_dmd.yaml", name + "_split", split), "auto")};
}

TEST(Trainer, ResumeEqualsUninterrupted) {
  const auto& w = world();
  auto [a, b] = straight_and_resumed("resume");
  EXPECT_EQ(b.start_step, 2);
  EXPECT_EQ(b.end_step, 4);
  expect_same_weights(a.last_checkpoint + "/model.pt", b.last_checkpoint + "/model.pt");
  EXPECT_EQ(count_lines(w.out("resume_split") + "/metrics.jsonl"), 4);
}

// Checkpoints written before the single scheme (shards nested in state_<model>/step-N/ with
// their own meta.json, no shard layout in trainer_state.json) still resume, bit-identically.
TEST(Trainer, ResumesTheOldNestedCheckpointLayout) {
  auto [a, b] = straight_and_resumed("old", [](const std::string& half) {
    // Rewrite the step-2 checkpoint into the old layout.
    const fs::path dir = half;
    auto st = nlohmann::json::parse(core::read_file((dir / "trainer_state.json").string()));
    for (const auto& [name, layout] : st["models"].items()) {
      const fs::path sub = dir / ("state_" + name) / "step-2";
      fs::create_directories(sub);
      for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().rfind(name + ".shard-", 0) == 0)
          fs::rename(e.path(), sub / e.path().filename());
      nlohmann::json meta = {{"format", "causvid-sharded-v1"},
                             {"step", 2},
                             {"optimizer_step", layout["optimizer_step"]},
                             {"modules", {{name, layout}}}};
      core::write_file_atomic((sub / "meta.json").string(), meta.dump());
    }
    st.erase("models");
    st.erase("files");  // checkpoints of that time had no checksum list either
    core::write_file_atomic((dir / "trainer_state.json").string(), st.dump());
  });
  EXPECT_EQ(b.start_step, 2);
  expect_same_weights(a.last_checkpoint + "/model.pt", b.last_checkpoint + "/model.pt");
}

// LoRA runs resume bit-identically too, and their checkpoints carry the adapters as ComfyUI
// LoRA files that turn the base into the trained generator.
TEST(Trainer, LoraRunResumesAndWritesItsAdapters) {
  auto [a, b] = straight_and_resumed("lora", {}, {"lora_rank=4", "lora_critic=true"});
  EXPECT_EQ(b.start_step, 2);
  expect_same_weights(a.last_checkpoint + "/model.pt", b.last_checkpoint + "/model.pt");
  for (const char* f : {"generator_lora.safetensors", "generator_lora_ema.safetensors",
                        "critic_lora.safetensors"}) {
    ASSERT_TRUE(fs::exists(fs::path(b.last_checkpoint) / f)) << f;
    auto l = models::read_lora((fs::path(b.last_checkpoint) / f).string());
    EXPECT_EQ(l.format, "comfyui");
    EXPECT_EQ(l.modules.front().rank(), 4);
  }
  expect_same_weights(a.last_checkpoint + "/generator_lora.safetensors",
                      b.last_checkpoint + "/generator_lora.safetensors");
  // model.pt holds the adapters' group, not a generator: export says so.
  testing::expect_error_contains(
      [&] { trainer::export_checkpoint(b.last_checkpoint, world().out("lora.pt"), "causvid", false); },
      {"generator_lora"});
}

TEST(Trainer, TwoRankCausalDmdOverGloo) {
  const auto& w = world();
  auto c = w.config("tiny_dmd.yaml", "dmd2", {"data_path=" + w.latents(), "max_iters=2",
                                              "num_frame_per_block=3"});
  std::vector<double> losses(2);
  testing::run_ranks(2, [&](std::shared_ptr<core::DistContext> ctx) {
    trainer::TrainOptions o;
    o.quiet = true;
    o.num_samples = 0;
    auto r = trainer::run_training(c, ctx, o);
    losses[ctx->rank()] = r.last_metrics.at("critic_loss");
  });
  EXPECT_TRUE(std::isfinite(losses[0]) && std::isfinite(losses[1]));
  EXPECT_NE(losses[0], losses[1]);  // different data shards and seeds
  EXPECT_TRUE(fs::exists(fs::path(w.out("dmd2")) / "checkpoint_model_000002" / "model.pt"));
}

TEST(Trainer, BadInputs) {
  const auto& w = world();
  // image_or_video_shape disagrees with the dataset.
  testing::expect_error_contains(
      [&] {
        train(w.config("tiny_dmd.yaml", "bad1",
                       {"data_path=" + w.latents(), "image_or_video_shape=[1, 6, 4, 8, 8]"}));
      },
      {"image_or_video_shape", "latents_lmdb"});
  // Missing generator_ckpt.
  testing::expect_error_contains(
      [&] {
        train(w.config("tiny_dmd.yaml", "bad2",
                       {"data_path=" + w.latents(), "generator_ckpt=" + w.out("nope.pt")}));
      },
      {"generator_ckpt", "nope.pt"});
  // A checkpoint of a different model size.
  {
    auto big = w.config("tiny_dmd.yaml", "bad3", {"model_dim=128", "model_num_heads=4"});
    models::WanModel m(models::wan_config(big));
    core::save_safetensors(w.out("big.safetensors"), core::state_dict(*m));
  }
  testing::expect_error_contains(
      [&] {
        train(w.config("tiny_dmd.yaml", "bad3",
                       {"data_path=" + w.latents(), "generator_ckpt=" + w.out("big.safetensors")}));
      },
      {"big.safetensors"});
  // LMDB without a shape key; LMDB with a short row.
  {
    data::ArrayLmdbWriter x(w.out("noshape_lmdb"));
    x.put_tensor_rows("latents", 0, torch::randn({2, 3, 4, 8, 8}));
    x.put_string_rows("prompts", 0, {"a", "b"});
    x.finish({{"prompts", {2}}});
    data::ArrayLmdbWriter y(w.out("short_lmdb"));
    y.put_tensor_rows("latents", 0, torch::randn({2, 3, 4, 8, 7}));
    y.put_string_rows("prompts", 0, {"a cat", "a dog"});
    y.finish({{"latents", {2, 3, 4, 8, 8}}, {"prompts", {2}}});
  }
  testing::expect_error_contains(
      [&] { train(w.config("tiny_dmd.yaml", "bad4", {"data_path=" + w.out("noshape_lmdb")})); },
      {"latents_shape"});
  testing::expect_error_contains(
      [&] { train(w.config("tiny_dmd.yaml", "bad5", {"data_path=" + w.out("short_lmdb")})); },
      {"latents_0_data", "bytes"});
}

// A full disk during checkpointing (RLIMIT_FSIZE: writes past a few KB fail with EFBIG, also
// as root): a clear error, and the previous checkpoint stays complete.
TEST(Trainer, FullDiskKeepsPreviousCheckpoint) {
  const auto& w = world();
  auto c = w.config("tiny_ode.yaml", "full", {"data_path=" + w.ode(), "max_iters=1"});
  auto r = train(c);
  ASSERT_TRUE(fs::exists(r.last_checkpoint + "/model.pt"));
  auto c2 = w.config("tiny_ode.yaml", "full", {"data_path=" + w.ode(), "max_iters=2"});
  struct rlimit old_lim;
  getrlimit(RLIMIT_FSIZE, &old_lim);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old_lim;
  lim.rlim_cur = 4096;
  setrlimit(RLIMIT_FSIZE, &lim);
  bool threw = false;
  try {
    train(c2, "auto");
  } catch (const std::exception&) {
    threw = true;
  }
  setrlimit(RLIMIT_FSIZE, &old_lim);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(threw);
  EXPECT_TRUE(fs::exists(r.last_checkpoint + "/model.pt"));
  EXPECT_TRUE(fs::exists(r.last_checkpoint + "/trainer_state.json"));
  EXPECT_FALSE(fs::exists(fs::path(w.out("full")) / "checkpoint_model_000002"));
  EXPECT_EQ(trainer::latest_checkpoint(w.out("full")), r.last_checkpoint);
}

}  // namespace
}  // namespace causvid

namespace causvid {
namespace {

// generator_grad / fake_score_grad freeze what they say (CausVid's set_module_grad): the frozen
// model's weights are the same in every checkpoint, the other one trains.
TEST(Trainer, GradKeysFreezeTheirModel) {
  const auto& w = testing::world();
  auto weights = [&](const std::string& run, int step, const std::string& group) {
    auto sd = core::load_weights(w.out(run) + "/" + trainer::checkpoint_name(step) + "/model.pt");
    std::vector<torch::Tensor> v;
    for (const auto& kv : sd)
      if (kv.first.rfind(group + ".model.", 0) == 0) v.push_back(kv.second.flatten());
    return torch::cat(v);
  };
  for (const std::string frozen : {"generator", "critic"}) {
    const std::string run = "frozen_" + frozen;
    const std::string key = frozen == "generator" ? "generator_grad" : "fake_score_grad";
    train(w.config("tiny_dmd.yaml", run,
                   {"data_path=" + w.latents(), "num_frame_per_block=3", "max_iters=3",
                    "save_iters=1", "keep_latest=0", "dfake_gen_update_ratio=1",
                    key + "={model: false}"}));
    const std::string other = frozen == "generator" ? "critic" : "generator";
    EXPECT_TRUE(torch::equal(weights(run, 1, frozen), weights(run, 3, frozen))) << frozen;
    EXPECT_FALSE(torch::equal(weights(run, 1, other), weights(run, 3, other))) << other;
  }
  // The real score cannot be trained; a frozen generator leaves ode nothing to train.
  testing::expect_error_contains(
      [&] { w.config("tiny_dmd.yaml", "x", {"real_score_grad={model: true}"}); },
      {"real_score_grad", "frozen"});
  testing::expect_error_contains(
      [&] { w.config("tiny_ode.yaml", "x", {"generator_grad={model: false}"}); },
      {"generator_grad", "nothing to train"});
}

TEST(TensorBoard, Crc32cKnownValue) {
  const std::string s = "123456789";
  EXPECT_EQ(core::crc32c(s.data(), s.size()), 0xE3069283u);  // the CRC-32C check value
  // Continued over pieces = the whole (the hardware and table paths agree on odd tails).
  EXPECT_EQ(core::crc32c(s.data() + 5, s.size() - 5, core::crc32c(s.data(), 5)), 0xE3069283u);
}

// Non-finite gradients skip the update (weights untouched) and max_nonfinite_skips in a row
// stop the run with an error naming the cause; the metrics count the skips.
TEST(Trainer, NonFiniteGradientsSkipThenStop) {
  const auto& w = testing::world();
  const std::string nan_db = w.out("nan_latents");
  if (!fs::exists(nan_db)) {
    auto lat = torch::randn({8, 3, 4, 8, 8});
    lat.index_put_({torch::indexing::Slice(), 0, 0, 0, 0}, std::nan(""));
    data::ArrayLmdbWriter wr(nan_db);
    wr.put_tensor_rows("latents", 0, lat);
    wr.put_string_rows("prompts", 0, testing::kPrompts);
    wr.finish({{"latents", {8, 3, 4, 8, 8}}, {"prompts", {8}}});
  }
  auto c = w.config("tiny_bidirectional_dmd.yaml", "nan_run",
                    {"distillation_loss=diffusion", "data_path=" + nan_db, "max_iters=6",
                     "save_iters=1000", "max_nonfinite_skips=3"});
  testing::expect_error_contains([&] { train(c); },
                                 {"3 consecutive updates skipped", "non-finite",
                                  "max_nonfinite_skips"});
  EXPECT_EQ(count_lines(w.out("nan_run") + "/metrics.jsonl"), 2);  // steps 1-2 logged, 3 threw
}

}  // namespace
}  // namespace causvid
