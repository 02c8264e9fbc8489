// tests/models/wan_model_test.cpp: WanModel properties beyond the golden fixtures:
// parameter names/counts, gradient checkpointing, causal consistency between the training
// forward and the KV-cache forward, rolling cache, and bad inputs.
#include "models/wan/wan_model.h"

#include "core/state_dict.h"
#include "models/wan/wan_wrapper.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using models::WanConfig;
using models::WanModel;

WanModel tiny_model(uint64_t seed = 0) {
  WanModel m(WanConfig::preset("tiny"));
  m->init_weights(seed);
  // init_weights zeroes the head; randomise everything so outputs are non-trivial.
  torch::NoGradGuard ng;
  torch::manual_seed(seed);
  for (auto& p : m->parameters()) p.normal_(0, 0.2);
  return m;
}

TEST(WanModel, ParameterNamesAndCountMatchTheReference) {
  auto cfg = WanConfig::preset("tiny");
  WanModel m(cfg);
  auto sd = core::state_dict(*m);
  for (const char* k :
       {"patch_embedding.weight", "text_embedding.0.weight", "text_embedding.2.bias",
        "time_embedding.0.weight", "time_projection.1.weight", "blocks.0.modulation",
        "blocks.1.self_attn.norm_q.weight", "blocks.0.cross_attn.o.bias", "blocks.0.norm3.weight",
        "blocks.1.ffn.2.weight", "head.modulation", "head.head.weight"})
    EXPECT_TRUE(sd.count(k)) << k;
  int64_t n = 0;
  for (auto& kv : sd) n += kv.second.numel();
  EXPECT_EQ(n, cfg.num_params());
  // wan-1.3b: 1,418,996,800 parameters per the published checkpoint's size; our formula:
  EXPECT_EQ(WanConfig::preset("wan-1.3b").num_params(), 1418996800);
}

TEST(WanModel, GradientCheckpointingGivesIdenticalGradients) {
  auto m = tiny_model(1);
  torch::manual_seed(2);
  auto x = torch::randn({1, 4, 3, 4, 4});
  auto t = torch::tensor({500.f, 500.f, 500.f}).view({1, 3});
  auto ctx = torch::randn({1, 5, 48});
  auto run = [&](bool ckpt) {
    m->zero_grad();
    m->set_gradient_checkpointing(ckpt);
    auto y = m->forward_causal(x, t, ctx, 1);
    (y * y).mean().backward();
    std::map<std::string, torch::Tensor> g;
    for (auto& p : m->named_parameters()) g[p.key()] = p.value().grad().clone();
    return g;
  };
  auto a = run(false), b = run(true);
  for (auto& kv : a) {
    ASSERT_TRUE(b[kv.first].defined()) << kv.first;
    double err = (kv.second - b[kv.first]).abs().max().item<double>();
    double mag = kv.second.abs().max().item<double>();
    EXPECT_LE(err, 1e-5 * mag + 1e-9) << kv.first << " err " << err << " mag " << mag;
  }
}

TEST(WanModel, KvCacheForwardMatchesBlockCausalTraining) {
  // With clean context blocks in the cache, the cached forward of block i equals the
  // training forward's output for block i (same timesteps), which is what makes the
  // training-time attention mask and the inference cache consistent.
  auto m = tiny_model(3);
  torch::NoGradGuard ng;
  torch::manual_seed(4);
  const int64_t nfpb = 2, F = 6, H = 4, W = 6, fs = (H / 2) * (W / 2);
  auto x = torch::randn({2, 4, F, H, W});
  auto ctx = torch::randn({2, 7, 48});
  auto t = torch::full({2, F}, 321.0f);
  auto full = m->forward_causal(x, t, ctx, nfpb);
  models::KvCache cache(m->kv_cache_options(2, fs, F));
  models::CrossAttnCache xc;
  for (int64_t b = 0; b < F / nfpb; ++b) {
    auto xb = x.slice(2, b * nfpb, (b + 1) * nfpb);
    auto yb = m->forward_cached(xb, t.slice(1, 0, nfpb), ctx, cache, xc, b * nfpb * fs);
    EXPECT_LT((yb - full.slice(2, b * nfpb, (b + 1) * nfpb)).abs().max().item<double>(), 1e-4)
        << "block " << b;
  }
  // Reuse after reset gives the same first block.
  cache.reset();
  xc.reset();
  auto y0 = m->forward_cached(x.slice(2, 0, nfpb), t.slice(1, 0, nfpb), ctx, cache, xc, 0);
  EXPECT_LT((y0 - full.slice(2, 0, nfpb)).abs().max().item<double>(), 1e-4);
}

TEST(KvCache, RollingWindowKeepsSinkAndRecentFrames) {
  models::KvCacheOptions o;
  o.num_layers = 1;
  o.num_heads = 1;
  o.head_dim = 2;
  o.frame_seqlen = 1;
  o.window_frames = 3;
  o.sink_frames = 1;
  models::KvCache c(o);
  torch::Tensor K;
  for (int64_t f = 0; f < 7; ++f) {
    auto kv = torch::full({1, 1, 1, 2}, double(f));
    K = c.update(0, kv, kv, f, f + 1).first;
  }
  // attended: sink frame 0 plus the 3 most recent frames 4, 5, 6 (any order)
  auto vals = std::get<0>(K.select(-1, 0).flatten().sort());
  EXPECT_TRUE(torch::equal(vals, torch::tensor({0.f, 4.f, 5.f, 6.f})));
}

TEST(KvCache, PlainCacheOverflowIsAClearError) {
  auto m = tiny_model();
  models::KvCache c(m->kv_cache_options(1, 4, 2));
  models::CrossAttnCache xc;
  torch::NoGradGuard ng;
  auto x = torch::randn({1, 4, 1, 4, 4});
  auto t = torch::full({1, 1}, 10.f);
  auto ctx = torch::randn({1, 3, 48});
  m->forward_cached(x, t, ctx, c, xc, 0);
  m->forward_cached(x, t, ctx, c, xc, 4);
  testing::expect_error_contains([&] { m->forward_cached(x, t, ctx, c, xc, 8); },
                                 {"capacity", "rolling"});
}

TEST(WanModel, BadConfigsAndInputsAreClearErrors) {
  auto cfg = WanConfig::preset("tiny");
  cfg.num_heads = 3;
  testing::expect_error_contains([&] { cfg.validate(); }, {"dim", "multiple of num_heads"});
  cfg = WanConfig::preset("tiny");
  cfg.dim = -64;
  testing::expect_error_contains([&] { cfg.validate(); }, {"positive"});
  testing::expect_error_contains([] { WanConfig::preset("wan-2b"); }, {"wan-2b", "wan-1.3b"});
  auto m = tiny_model();
  torch::NoGradGuard ng;
  auto ctx = torch::randn({1, 5, 48});
  testing::expect_error_contains(
      [&] { m->forward_causal(torch::randn({1, 4, 5, 4, 4}), torch::zeros({1, 5}), ctx, 3); },
      {"num_frame_per_block", "not divisible"});
  testing::expect_error_contains(
      [&] { m->forward(torch::randn({1, 3, 2, 4, 4}), torch::zeros({1}), ctx); }, {"want [B, 4"});
  testing::expect_error_contains(
      [&] { m->forward(torch::randn({1, 4, 2, 5, 4}), torch::zeros({1}), ctx); },
      {"not divisible by patch size"});
  testing::expect_error_contains(
      [&] { m->forward(torch::randn({1, 4, 2, 4, 4}), torch::zeros({1}), torch::randn({1, 20, 48})); },
      {"exceed text_len"});
}

TEST(WanModel, StrictLoadReportsEveryProblem) {
  WanModel m(WanConfig::preset("tiny"));
  auto sd = core::state_dict(*m);
  sd.erase("head.head.weight");
  sd.erase("blocks.0.modulation");
  sd["blocks.0.extra"] = torch::zeros({1});
  sd["patch_embedding.bias"] = torch::zeros({65});
  testing::expect_error_contains(
      [&] { core::load_state_dict(*m, sd, {"", "", true, "ckpt.safetensors"}); },
      {"ckpt.safetensors", "patch_embedding.bias"});
  sd["patch_embedding.bias"] = torch::zeros({64});
  testing::expect_error_contains(
      [&] { core::load_state_dict(*m, sd, {"", "", true, "ckpt.safetensors"}); },
      {"head.head.weight", "blocks.0.modulation", "blocks.0.extra"});
}

}  // namespace
}  // namespace causvid
