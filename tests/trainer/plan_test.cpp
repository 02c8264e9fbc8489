// tests/trainer/plan_test.cpp: the memory plan of each strategy and `causvid plan`.
#include <gtest/gtest.h>

#include <sstream>

#include "tests/test_util.h"
#include "trainer/fsdp.h"

namespace causvid {
namespace {

TEST(FsdpPlan, BytesPerStrategy) {
  const int64_t n = 1000;
  auto full = trainer::plan_memory(n, "full", 2, false, true);
  EXPECT_EQ(full.at_rest.params, 2000);
  EXPECT_EQ(full.at_rest.grads, 2000);
  EXPECT_EQ(full.at_rest.optimizer, 4000);
  auto ddp = trainer::plan_memory(n, "no_shard", 8, false, true);
  EXPECT_EQ(ddp.at_rest.total(), 16000);  // params alias the fp32 master
  auto z2 = trainer::plan_memory(n, "shard_grad_op", 2, true, true);
  EXPECT_EQ(z2.at_rest.params, 2000 + 2000);  // fp32 shard + whole bf16 params
  auto frozen = trainer::plan_memory(n, "full", 4, true, false);
  EXPECT_EQ(frozen.at_rest.total(), 500);  // a frozen shard is stored in bf16
  EXPECT_LE(double(full.at_rest.total()),
            0.55 * double(trainer::plan_memory(n, "full", 1, false, true).at_rest.total()));
  // Per-block gathering: the peak holds `gathered` unsharded params and grads, not the model.
  EXPECT_EQ(full.peak_extra, 2 * 4 * 1000);
  EXPECT_EQ(trainer::plan_memory(n, "full", 2, false, true, 300).peak_extra, 2 * 4 * 300);
  EXPECT_EQ(trainer::plan_memory(n, "full", 2, true, false, 300).peak_extra, 2 * 300);
  EXPECT_EQ(trainer::plan_memory(n, "zero2", 2, false, true, 300).peak_extra, 4 * 1000);
  testing::expect_error_contains([] { trainer::plan_memory(1, "zero3", 2, false, true); },
                                 {"sharding_strategy", "zero3"});
}

TEST(FsdpPlan, Command) {
  std::string out;
  int rc = testing::run_command(testing::causvid_binary() + " plan --config " +
                                    testing::source_dir() +
                                    "/configs/wan_causal_dmd.yaml --world-size 8",
                                &out);
  ASSERT_EQ(rc, 0) << out;
  for (const char* k : {"generator", "real_score", "fake_score", "total", "shard group 8"})
    EXPECT_NE(out.find(k), std::string::npos) << k << "\n" << out;
  rc = testing::run_command(testing::causvid_binary() + " plan --config " +
                                testing::source_dir() +
                                "/configs/wan_causal_dmd.yaml --world-size 6 --nproc-per-node 4",
                            &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("--nproc-per-node"), std::string::npos) << out;
}

// A LoRA run: the base rows frozen, the adapters as rows of their own, a far smaller total.
TEST(FsdpPlan, LoraRowsAndTotals) {
  auto total = [](const std::string& extra) {
    std::string out;
    int rc = testing::run_command(testing::causvid_binary() + " plan --config " +
                                      testing::source_dir() +
                                      "/configs/wan_causal_dmd.yaml --world-size 1 " + extra,
                                  &out);
    EXPECT_EQ(rc, 0) << out;
    auto p = out.find("\ntotal");
    EXPECT_NE(p, std::string::npos) << out;
    std::istringstream line(out.substr(p + 6, out.find('\n', p + 1) - p - 6));
    double params = 0, grads = 0, optim = 0, at_rest = 0;
    line >> params >> grads >> optim >> at_rest;
    return std::make_pair(at_rest, out);
  };
  auto [full, a] = total("");
  auto [lora, b] = total("--set lora_rank=64 --set lora_critic=true");
  for (const char* k : {"gen_lora", "fake_lora", "LoRA rank 64", "base frozen"})
    EXPECT_NE(b.find(k), std::string::npos) << k << "\n" << b;
  EXPECT_LT(lora, 0.5 * full) << a << b;
}

}  // namespace
}  // namespace causvid
