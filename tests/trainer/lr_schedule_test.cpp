// tests/trainer/lr_schedule_test.cpp: the learning-rate schedules (trainer/lr_schedule.h),
// their config checks, the optimizer's lr scale, and a run's per-step "lr" metric.
#include "trainer/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "tests/core/dist_util.h"
#include "tests/test_util.h"
#include "tests/trainer/tiny_world.h"
#include "trainer/fsdp.h"
#include "trainer/optimizer.h"
#include "trainer/trainer.h"

namespace causvid {
namespace {

using trainer::LrSchedule;

LrSchedule make(const std::string& kind, int64_t warmup, int64_t decay, int64_t max_iters,
                double min_ratio) {
  LrSchedule s;
  s.kind = kind;
  s.warmup_steps = warmup;
  s.decay_steps = decay;
  s.max_iters = max_iters;
  s.min_ratio = min_ratio;
  return s;
}

TEST(LrSchedule, ConstantWithWarmup) {
  auto s = make("constant", 4, 0, 0, 0);
  EXPECT_DOUBLE_EQ(s.factor(0), 0.25);
  EXPECT_DOUBLE_EQ(s.factor(3), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(1000000), 1.0);
  EXPECT_DOUBLE_EQ(make("constant", 0, 0, 0, 0).factor(0), 1.0);
}

TEST(LrSchedule, CosineEndsAtMinRatio) {
  auto s = make("cosine", 10, 0, 110, 0.1);
  EXPECT_DOUBLE_EQ(s.factor(9), 1.0);   // last warm-up step
  EXPECT_DOUBLE_EQ(s.factor(10), 1.0);  // p = 0
  EXPECT_NEAR(s.factor(60), 0.55, 1e-12);  // p = 0.5
  EXPECT_NEAR(s.factor(110), 0.1, 1e-12);
  EXPECT_NEAR(s.factor(500), 0.1, 1e-12);  // past max_iters: held at the minimum
  for (int64_t t = 10; t < 110; ++t) EXPECT_GE(s.factor(t), s.factor(t + 1));
}

TEST(LrSchedule, WsdIsStableThenLinear) {
  auto s = make("wsd", 0, 100, 1000, 0.0);
  EXPECT_DOUBLE_EQ(s.factor(0), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(899), 1.0);
  EXPECT_DOUBLE_EQ(s.factor(900), 1.0);
  EXPECT_NEAR(s.factor(950), 0.5, 1e-12);
  EXPECT_NEAR(s.factor(999), 0.01, 1e-12);
  EXPECT_NE(s.describe().find("900..1000"), std::string::npos) << s.describe();
}

TEST(LrSchedule, ConfigChecksNameTheKey) {
  auto load = [](std::vector<std::string> o) {
    o.insert(o.begin(), "max_iters=100");  // a later max_iters overrides it
    return core::load_config(testing::source_dir() + "/configs/tiny_dmd.yaml", o);
  };
  auto c = load({"lr_schedule=wsd", "lr_decay_fraction=0.2", "lr_warmup_steps=5"});
  EXPECT_EQ(LrSchedule::from_config(c).decay_steps, 20);
  EXPECT_EQ(LrSchedule::from_config(load({})).kind, "constant");
  testing::expect_error_contains([&] { load({"lr_schedule=linear"}); },
                                 {"tiny_dmd.yaml", "lr_schedule", "linear"});
  testing::expect_error_contains([&] { load({"lr_schedule=wsd"}); },
                                 {"lr_decay_fraction", "got 0", "wsd"});
  testing::expect_error_contains(
      [&] { load({"lr_schedule=wsd", "lr_decay_fraction=0.5", "lr_warmup_steps=60"}); },
      {"lr_warmup_steps", "60", "50"});
  testing::expect_error_contains([&] { load({"lr_decay_fraction=0.1"}); },
                                 {"lr_decay_fraction", "constant"});
  testing::expect_error_contains([&] { load({"lr_schedule=cosine", "lr_min_ratio=2"}); },
                                 {"lr_min_ratio", "[0, 1]"});
  testing::expect_error_contains([&] { load({"lr_schedule=cosine", "max_iters=0"}); },
                                 {"max_iters", "cosine"});
}

// A scale of 0.5 on lr 0.01 is AdamW at lr 0.005, bit for bit (weight decay included).
TEST(LrSchedule, OptimizerScaleIsTheLearningRate) {
  testing::run_ranks(1, [](std::shared_ptr<core::DistContext> ctx) {
    torch::manual_seed(0);
    torch::nn::Linear a(4, 3), b(4, 3);
    b->weight.data().copy_(a->weight.data());
    b->bias.data().copy_(a->bias.data());
    trainer::FsdpOptions fo;
    fo.strategy = "no_shard";
    trainer::ShardedModule sa(a.ptr(), ctx, fo), sb(b.ptr(), ctx, fo);
    trainer::AdamWOptions oa, ob;
    oa.lr = 0.01;
    ob.lr = 0.005;
    trainer::ShardedAdamW opt_a({&sa}, oa), opt_b({&sb}, ob);
    opt_a.set_lr_scale(0.5);
    EXPECT_DOUBLE_EQ(opt_a.lr(), 0.005);
    auto x = torch::randn({5, 4});
    for (int i = 0; i < 3; ++i) {
      for (auto* s : {&sa, &sb}) s->gather_params();
      a->forward(x).pow(2).sum().backward();
      b->forward(x).pow(2).sum().backward();
      sa.reduce_grads();
      sb.reduce_grads();
      opt_a.step();
      opt_b.step();
      opt_a.zero_grad();
      opt_b.zero_grad();
    }
    for (auto* s : {&sa, &sb}) s->gather_params();
    EXPECT_TRUE(torch::equal(a->weight, b->weight));
    EXPECT_TRUE(torch::equal(a->bias, b->bias));
    EXPECT_FALSE(torch::equal(a->weight, torch::zeros_like(a->weight)));
  });
}

// A run logs the scheduled lr of every update in metrics.jsonl.
TEST(LrSchedule, RunLogsTheScheduledLr) {
  const auto& w = testing::world();
  auto c = w.config("tiny_bidirectional_dmd.yaml", "lr_cosine",
                    {"distillation_loss=diffusion", "data_path=" + w.latents(), "max_iters=4",
                     "save_iters=1000", "lr_schedule=cosine", "lr_warmup_steps=1"});
  trainer::TrainOptions o;
  o.quiet = true;
  o.num_samples = 0;
  trainer::run_training(c, std::make_shared<core::DistContext>(), o);
  std::ifstream in(w.out("lr_cosine") + "/metrics.jsonl");
  const auto s = LrSchedule::from_config(c);
  std::string line;
  int n = 0;
  for (; std::getline(in, line); ++n) {
    auto j = nlohmann::json::parse(line);
    ASSERT_TRUE(j.contains("lr")) << line;
    EXPECT_DOUBLE_EQ(j["lr"].get<double>(), c.lr * s.factor(j["step"].get<int64_t>() - 1));
  }
  EXPECT_EQ(n, 4);
}

}  // namespace
}  // namespace causvid
