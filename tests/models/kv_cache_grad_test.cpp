// tests/models/kv_cache_grad_test.cpp: the KV cache's autograd semantics, as Self-Forcing's
// in-place cache has them: a write with gradient leaves its history on the storage; a later
// no-grad write of the same slots changes the values read but not where their gradient goes;
// reset() drops the history.
#include <gtest/gtest.h>

#include "models/wan/kv_cache.h"

namespace causvid {
namespace {

models::KvCacheOptions opts(int64_t window = -1) {
  models::KvCacheOptions o;
  o.batch = 1;
  o.num_layers = 1;
  o.num_heads = 1;
  o.head_dim = 2;
  o.frame_seqlen = 1;
  o.max_frames = 4;
  o.window_frames = window;
  return o;
}

void check_history_survives_no_grad_overwrite(int64_t window) {
  models::KvCache cache(opts(window));
  auto w = torch::ones({1, 1, 1, 2}, torch::requires_grad());
  auto k = w * 3.0;  // the exit call's keys of block 0
  cache.update(0, k, k, 0, 1);
  {
    torch::NoGradGuard ng;  // the clean re-run of block 0 overwrites its slot
    auto clean = torch::full({1, 1, 1, 2}, 7.0);
    cache.update(0, clean, clean, 0, 1);
  }
  auto k1 = torch::full({1, 1, 1, 2}, 5.0, torch::requires_grad());
  auto [K, V] = cache.update(0, k1, k1, 1, 2);  // block 1 reads slots 0 and 1
  EXPECT_DOUBLE_EQ(K[0][0][0][0].item<double>(), 7.0) << "the read sees the clean values";
  K.sum().backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_TRUE(torch::equal(w.grad(), torch::full({1, 1, 1, 2}, 3.0)))
      << "the gradient of slot 0 goes to the exit call's keys";
  EXPECT_TRUE(torch::equal(k1.grad(), torch::ones({1, 1, 1, 2})));
  cache.reset();
  auto [K2, V2] = cache.update(0, k1.detach(), k1.detach(), 0, 1);
  EXPECT_FALSE(K2.requires_grad()) << "reset() must drop the history";
}

TEST(KvCacheGrad, PlainCacheKeepsTheExitCallsHistory) { check_history_survives_no_grad_overwrite(-1); }
TEST(KvCacheGrad, RollingCacheKeepsTheExitCallsHistory) { check_history_survives_no_grad_overwrite(3); }

TEST(KvCacheGrad, NoGradReadsAreViewsWithoutHistory) {
  models::KvCache cache(opts());
  torch::NoGradGuard ng;
  auto k = torch::ones({1, 1, 1, 2});
  auto [K, V] = cache.update(0, k, k, 0, 1);
  EXPECT_FALSE(K.requires_grad());
}

}  // namespace
}  // namespace causvid
