// tests/trainer/golden_curves_test.cpp: golden training curves. Each tiny stage (and causal
// DMD on 2 ranks with full sharding) runs its first steps from fixed seeds in the tiny world,
// and every logged loss and gradient norm of every step is compared with the values recorded
// in tests/golden/<name>.json. Any change to training behaviour (which call carries gradient,
// a sign, a detach, the optimizer, clipping, EMA, the data order) moves these numbers and fails
// here until it is re-recorded on purpose:
//
//   CAUSVID_RECORD_GOLDEN=1 build/causvid_tests --gtest_filter='GoldenCurves.*'
//
// writes the files again (then review the diff and commit it with the change that explains it).
// The tolerance (relative 2e-3, absolute 1e-9) absorbs float differences between CPUs and
// thread counts, not behaviour changes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "core/tensor_io.h"
#include "tests/core/dist_util.h"
#include "tests/test_util.h"
#include "tests/trainer/tiny_world.h"
#include "trainer/trainer.h"

namespace causvid {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

// DMD stages run with dfake_gen_update_ratio 2: generator updates at steps 1, 3 and 5 (the
// first DMD gradient is exactly zero: fresh real and fake scores both predict zero flow, as
// Wan's init zeroes the head), critic updates at every step.
constexpr int kSteps = 5;

// The generator's weights at a checkpoint as one flat float64 vector (keys sorted).
torch::Tensor generator_vector(const std::string& ckpt_dir) {
  auto sd = core::load_weights(ckpt_dir + "/model.pt");
  std::vector<torch::Tensor> parts;
  for (const auto& kv : sd)  // std::map: sorted
    if (kv.first.rfind("generator.model.", 0) == 0)
      parts.push_back(kv.second.to(torch::kFloat64).flatten());
  return torch::cat(parts);
}

// metrics.jsonl -> [{metric: value}] per step, without timings, plus the signed change of the
// generator's weights over each step (sum and sum of squares of w_s - w_{s-1}, from the
// per-step checkpoints): losses and gradient norms do not change sign when the DMD gradient
// does, the update does.
json read_curve(const std::string& out_dir) {
  std::ifstream f(out_dir + "/metrics.jsonl");
  json curve = json::array();
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    auto j = json::parse(line);
    json m = json::object();
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it.key() != "step_time" && it.value().is_number()) m[it.key()] = it.value();
    curve.push_back(m);
  }
  torch::Tensor prev;
  for (size_t i = 0; i < curve.size(); ++i) {
    const std::string ck = out_dir + "/" + trainer::checkpoint_name(int64_t(i) + 1);
    if (!fs::exists(ck + "/model.pt")) continue;
    auto v = generator_vector(ck);
    if (prev.defined()) {
      auto d = v - prev;
      curve[i]["generator_update_sum"] = d.sum().item<double>();
      curve[i]["generator_update_sq"] = d.pow(2).sum().item<double>();
    }
    prev = v;
  }
  return curve;
}

void check_or_record(const std::string& name, const json& curve) {
  const std::string path = testing::source_dir() + "/tests/golden/" + name + ".json";
  const char* rec = std::getenv("CAUSVID_RECORD_GOLDEN");
  if (rec && std::string(rec) == "1") {
    core::write_file_atomic(path, json{{"steps", curve}}.dump(1) + "\n");
    GTEST_SKIP() << "recorded " << path;
  }
  ASSERT_TRUE(fs::exists(path)) << path << " missing: record it (see the file header)";
  const json want = json::parse(core::read_file(path)).at("steps");
  ASSERT_EQ(curve.size(), want.size()) << name << ": steps";
  for (size_t s = 0; s < want.size(); ++s) {
    ASSERT_EQ(curve[s].size(), want[s].size()) << name << " step " << s + 1 << ": metrics "
                                               << curve[s].dump() << " vs " << want[s].dump();
    for (auto it = want[s].begin(); it != want[s].end(); ++it) {
      ASSERT_TRUE(curve[s].contains(it.key())) << name << " step " << s + 1 << ": " << it.key();
      const double a = curve[s].at(it.key()).get<double>(), b = it.value().get<double>();
      EXPECT_NEAR(a, b, 1e-9 + 2e-3 * std::abs(b))
          << name << " step " << s + 1 << " " << it.key() << ": got " << a << ", golden " << b;
    }
  }
}

trainer::TrainOptions quiet() {
  trainer::TrainOptions o;
  o.quiet = true;
  o.num_samples = 0;
  return o;
}

void run_stage(const std::string& name, const std::string& file,
               std::vector<std::string> sets) {
  const auto& w = testing::world();
  const std::string out = w.out("golden_" + name);
  fs::remove_all(out);
  sets.push_back("max_iters=" + std::to_string(kSteps));
  sets.push_back("save_iters=1");
  sets.push_back("keep_latest=0");
  sets.push_back("seed=17");
  trainer::run_training(w.config(file, "golden_" + name, sets),
                        std::make_shared<core::DistContext>(), quiet());
  check_or_record(name, read_curve(out));
}

TEST(GoldenCurves, Diffusion) {
  const auto& w = testing::world();
  run_stage("diffusion", "tiny_bidirectional_dmd.yaml",
            {"distillation_loss=diffusion", "data_path=" + w.latents(), "text_dropout=0.5",
             "ema_weight=0.9"});
}

TEST(GoldenCurves, CausalOde) {
  const auto& w = testing::world();
  run_stage("causal_ode", "tiny_ode.yaml", {"data_path=" + w.ode()});
}

TEST(GoldenCurves, CausalDmd) {
  const auto& w = testing::world();
  run_stage("causal_dmd", "tiny_dmd.yaml",
            {"data_path=" + w.latents(), "num_frame_per_block=3", "ema_weight=0.5",
             "dfake_gen_update_ratio=2"});
}

TEST(GoldenCurves, BidirectionalDmdBackwardSimulation) {
  const auto& w = testing::world();
  run_stage("bidirectional_dmd", "tiny_bidirectional_dmd.yaml",
            {"data_path=" + w.prompts(), "backward_simulation=true", "dfake_gen_update_ratio=2"});
}

// Two ranks, full sharding: rank 0's curve (the metrics it logs).
TEST(GoldenCurves, CausalDmdTwoRanksFullSharding) {
  const auto& w = testing::world();
  const std::string out = w.out("golden_causal_dmd_w2");
  fs::remove_all(out);
  auto c = w.config("tiny_dmd.yaml", "golden_causal_dmd_w2",
                    {"data_path=" + w.latents(), "num_frame_per_block=3",
                     "sharding_strategy=full", "seed=17", "save_iters=1", "keep_latest=0",
                     "dfake_gen_update_ratio=2",
                     "max_iters=" + std::to_string(kSteps)});
  testing::run_ranks(2, [&](std::shared_ptr<core::DistContext> ctx) {
    trainer::run_training(c, ctx, quiet());
  });
  check_or_record("causal_dmd_w2_full", read_curve(out));
}

}  // namespace
}  // namespace causvid
