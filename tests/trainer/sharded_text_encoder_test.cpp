// tests/trainer/sharded_text_encoder_test.cpp: text_encoder_fsdp_* acts: the live text
// encoder is sharded across ranks (each holds half), gathered only for an encode, and
// encodes exactly what the whole encoder does.
#include <gtest/gtest.h>

#include <mutex>

#include "tests/core/dist_util.h"
#include "tests/test_util.h"
#include "toy/text_encoder.h"
#include "trainer/sharded_text_encoder.h"

namespace causvid {
namespace {

TEST(ShardedTextEncoder, ShardsTheLiveEncoderAndEncodesTheSame) {
  const std::vector<std::string> prompts = {"a red square moving left", "a blue disc"};
  torch::Tensor want;
  {
    torch::NoGradGuard ng;
    want = toy::make_toy_text_conditioner()->encode(prompts);
  }
  std::mutex mu;
  std::vector<torch::Tensor> got(2);
  std::vector<int64_t> shard_numel(2), total_numel(2), after(2);
  testing::run_ranks(2, [&](std::shared_ptr<core::DistContext> ctx) {
    core::Config c;
    c.sharding_strategy = "full";
    c.text_encoder_fsdp_wrap_strategy = "transformer";
    c.text_encoder_fsdp_transformer_module = "blocks";
    trainer::ShardedTextEncoder te(toy::make_toy_text_conditioner(), c, ctx);
    ASSERT_NE(te.sharded(), nullptr);
    int64_t shard = 0, total = 0;
    for (size_t i = 0; i < te.sharded()->units().size(); ++i) {
      shard += te.sharded()->shard(i).numel();
      total += te.sharded()->units()[i].numel;
    }
    torch::Tensor out;
    {
      torch::NoGradGuard ng;
      out = te.encode(prompts);
    }
    std::lock_guard<std::mutex> g(mu);
    got[ctx->rank()] = out;
    shard_numel[ctx->rank()] = shard;
    total_numel[ctx->rank()] = total;
    after[ctx->rank()] = te.sharded()->gather_stats().current_bytes;
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(torch::equal(got[r], want)) << "rank " << r;
    EXPECT_LE(shard_numel[r], total_numel[r] / 2 + 64) << "rank " << r << " holds more than half";
    EXPECT_EQ(after[r], 0) << "rank " << r << " kept the encoder gathered after encode";
  }
}

TEST(ShardedTextEncoder, APromptCachePassesThrough) {
  struct Fixed : models::TextConditioner {
    torch::Tensor encode(const std::vector<std::string>& p) override {
      return torch::ones({int64_t(p.size()), 4, 8});
    }
    int64_t text_len() const override { return 4; }
    int64_t dim() const override { return 8; }
    torch::ScalarType output_dtype() const override { return torch::kFloat32; }
  };
  core::Config c;
  trainer::ShardedTextEncoder te(std::make_unique<Fixed>(), c,
                                 std::make_shared<core::DistContext>());
  EXPECT_EQ(te.sharded(), nullptr);
  EXPECT_TRUE(torch::equal(te.encode({"x"}), torch::ones({1, 4, 8})));
}

}  // namespace
}  // namespace causvid
