// tests/gpu/gpu_test.cpp: the `gpu` ctest label. Each test needs a CUDA device and skips
// visibly without one (CPU-only machines and CI). scripts/gpu_check.sh runs them on a GPU:
//  - every golden fixture on cuda in fp32 (the fixture's tolerance) and in bf16
//    (checks::bf16_tolerance);
//  - a 2-step causal DMD training run on cuda whose losses match the same run on CPU;
//  - streaming generate on cuda: the same latents as on CPU (same seed: noise is drawn on the
//    CPU, core/random.h) and an mp4 written block by block.
#include <gtest/gtest.h>

#include <filesystem>

#include "checks/fixtures.h"
#include "core/dist.h"
#include "core/runtime.h"
#include "inference/generate.h"
#include "models/wan/wan_model.h"
#include "tests/test_util.h"
#include "tests/trainer/tiny_world.h"
#include "trainer/trainer.h"

namespace causvid {
namespace {

#define SKIP_WITHOUT_CUDA()                                                     \
  if (core::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: GPU test not run"

std::vector<std::string> fixture_dirs() {
  return checks::default_fixture_dirs(testing::shared_dir());
}

void expect_all_fixtures_pass(torch::ScalarType dtype) {
  checks::FixturePlacement place;
  place.device = core::resolve_device("cuda");
  place.dtype = dtype;
  const auto dirs = fixture_dirs();
  ASSERT_FALSE(dirs.empty()) << "no fixtures found";
  for (const auto& d : dirs) {
    auto r = checks::run_fixture(d, place);
    EXPECT_EQ(r.status, checks::FixtureStatus::kPass)
        << r.name << " (" << core::dtype_name(dtype) << " on cuda): " << r.message;
  }
}

TEST(Gpu, FixturesFp32OnCuda) {
  SKIP_WITHOUT_CUDA();
  expect_all_fixtures_pass(torch::kFloat32);
}

TEST(Gpu, FixturesBf16OnCuda) {
  SKIP_WITHOUT_CUDA();
  expect_all_fixtures_pass(torch::kBFloat16);
}

std::shared_ptr<core::DistContext> single(const std::string& device) {
  core::DistOptions o;
  o.device = device;
  return core::DistContext::init(core::DistEnv{}, o);
}

TEST(Gpu, TwoTrainingStepsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const auto& w = testing::world();
  std::map<std::string, std::map<std::string, double>> metrics;
  for (const std::string dev : {"cpu", "cuda"}) {
    auto c = w.config("tiny_dmd.yaml", "gpu_vs_cpu_" + dev,
                      {"data_path=" + w.latents(), "max_iters=2", "save_iters=2", "seed=11",
                       "device=" + dev});
    trainer::TrainOptions o;
    o.quiet = true;
    o.num_samples = 0;
    auto r = trainer::run_training(c, single(dev), o);
    ASSERT_EQ(r.end_step, 2);
    metrics[dev] = r.last_metrics;
  }
  for (const auto& kv : metrics["cpu"]) {
    if (kv.first == "step_time") continue;
    ASSERT_TRUE(metrics["cuda"].count(kv.first)) << kv.first;
    const double a = kv.second, b = metrics["cuda"].at(kv.first);
    EXPECT_NEAR(a, b, 1e-3 + 1e-2 * std::abs(a)) << kv.first << " cpu " << a << " cuda " << b;
  }
}

TEST(Gpu, StreamingGenerateMatchesCpu) {
  SKIP_WITHOUT_CUDA();
  testing::TempDir dir;
  std::map<std::string, torch::Tensor> lat;
  for (const std::string dev : {"cpu", "cuda"}) {
    auto cfg = models::WanConfig::preset("tiny");
    models::WanModel m(cfg);
    m->init_weights(5);
    {
      torch::NoGradGuard ng;
      torch::manual_seed(5);
      m->head->head->weight.normal_(0, 0.02);
    }
    inference::GenerateOptions o;
    o.num_frames = 6;
    o.latent_height = o.latent_width = 8;
    o.num_frame_per_block = 3;
    o.preview_scale = 2;
    o.quiet = true;
    o.device = core::resolve_device(dev);
    int64_t blocks = 0;
    o.on_block = [&](int64_t, int64_t) { ++blocks; };
    inference::VideoGenerator g(
        m, std::make_unique<inference::HashTextConditioner>(cfg.text_len, cfg.text_dim), nullptr,
        o);
    inference::SampleSpec s;
    s.prompt = "a red square moving left";
    s.seed = 3;
    s.out_path = dir.file(dev + ".mp4");
    auto r = g.generate(s);
    EXPECT_EQ(blocks, 2);
    EXPECT_TRUE(std::filesystem::exists(s.out_path));
    lat[dev] = r.latents;
  }
  ASSERT_EQ(lat["cpu"].sizes(), lat["cuda"].sizes());
  EXPECT_LT((lat["cpu"] - lat["cuda"]).abs().max().item<double>(), 1e-3);
}

}  // namespace
}  // namespace causvid
