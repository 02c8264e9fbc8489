// tests/inference/causal_teacher_test.cpp: the causal teacher's KV-cache Euler sampler
// (sample_causal_teacher, what `ode-pairs --causal-teacher` runs). Its first block sees no
// context, so it is the teacher sampler of that block alone; later blocks depend on the
// earlier ones only through the cache.
#include <gtest/gtest.h>

#include <map>

#include "core/random.h"
#include "inference/causal_pipeline.h"
#include "inference/self_forcing_rollout.h"
#include "models/wan/wan_model.h"
#include "models/wan/wan_wrapper.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

models::WanConfig tiny() {
  models::WanConfig c;
  c.dim = 32;
  c.ffn_dim = 64;
  c.freq_dim = 32;
  c.num_heads = 2;
  c.num_layers = 2;
  c.in_dim = 4;
  c.out_dim = 4;
  c.text_dim = 16;
  c.text_len = 8;
  return c;
}

TEST(CausalTeacher, FirstBlockIsTheTeacherSamplerOfThatBlockAndLaterBlocksSeeThePast) {
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  models::WanModel net(tiny());
  net->init_weights(11);
  for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.05);  // a non-zero head
  models::WanDiffusionWrapper w(net, /*causal=*/true, /*nfpb=*/2, 5.0);
  auto noise = torch::randn({1, 6, 4, 4, 4});
  auto cond = torch::randn({1, 8, 16}), uncond = torch::randn({1, 8, 16});
  auto tr = inference::sample_causal_teacher(w, noise, cond, uncond, 4, 3.0, 5.0);
  ASSERT_EQ(tr.trajectory.sizes(), (std::vector<int64_t>{1, 5, 6, 4, 4, 4}));
  EXPECT_TRUE(torch::equal(tr.trajectory.select(1, 0), noise));
  auto first = inference::sample_teacher(w, noise.slice(1, 0, 2), cond, uncond, 4, 3.0, 5.0);
  EXPECT_LT((tr.trajectory.slice(2, 0, 2) - first.trajectory).abs().max().item<double>(), 1e-5);
  // Changing block 0's noise changes block 1's trajectory (through the cache only).
  auto noise2 = noise.clone();
  noise2.slice(1, 0, 2).add_(1.0);
  auto tr2 = inference::sample_causal_teacher(w, noise2, cond, uncond, 4, 3.0, 5.0);
  EXPECT_GT((tr2.trajectory.select(1, 4).slice(1, 2, 4) - tr.trajectory.select(1, 4).slice(1, 2, 4))
                .abs()
                .max()
                .item<double>(),
            1e-4);
}

}  // namespace
}  // namespace causvid

namespace causvid {
namespace {

// With gradient checkpointing the rollout's KV-cache calls are recomputed in backward
// against the cached past as it was (KvCache::past). When only the last block carries
// gradient (no later block reads its keys), checkpointing must not change a gradient.
TEST(SelfForcingRollout, CheckpointedExitCallsGiveTheSameGradients) {
  for (int64_t window : {int64_t{-1}, int64_t{4}}) {
    auto grads = [&](bool ckpt) {
      torch::manual_seed(5);
      models::WanModel net(tiny());
      net->init_weights(13);
      {
        torch::NoGradGuard ng;
        for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.05);
      }
      net->set_gradient_checkpointing(ckpt);
      models::WanDiffusionWrapper w(net, /*causal=*/true, /*nfpb=*/2, 5.0);
      auto noise = torch::randn({1, 6, 4, 4, 4});
      auto cond = torch::randn({1, 8, 16});
      auto probe = torch::randn({1, 6, 4, 4, 4});
      std::vector<torch::Tensor> draws;
      for (int i = 0; i < 3 * 3; ++i) draws.push_back(torch::randn({2, 4, 4, 4}));
      core::ReplaySource rng(draws, "test");
      inference::RolloutOptions o;
      o.step_list = {1000, 750, 500};
      o.num_frame_per_block = 2;
      o.grad_frames = 2;  // the last block only
      o.window_frames = window;
      o.sink_frames = window > 0 ? 2 : 0;
      auto r = inference::self_forcing_rollout(w, noise, cond, torch::Tensor(), {2, 2, 2}, rng, o);
      (r.video * probe).sum().backward();
      std::map<std::string, torch::Tensor> g;
      for (auto& p : net->named_parameters())
        g[p.key()] = p.value().grad().defined() ? p.value().grad().clone()
                                                : torch::zeros_like(p.value());
      return std::make_pair(r.video.detach(), g);
    };
    auto [v0, g0] = grads(false);
    auto [v1, g1] = grads(true);
    EXPECT_LT((v0 - v1).abs().max().item<double>(), 1e-6);
    // Self-Forcing's checkpointed blocks skip the cross-attention cache, so the text path
    // (text_embedding, cross_attn k/v/norm_k) gets gradient only with checkpointing on.
    auto text_path = [](const std::string& k) {
      return k.rfind("text_embedding", 0) == 0 || k.find("cross_attn.k.") != std::string::npos ||
             k.find("cross_attn.v.") != std::string::npos ||
             k.find("cross_attn.norm_k") != std::string::npos;
    };
    double worst = 0, norm = 0, text0 = 0, text1 = 0;
    for (const auto& [k, a] : g0) {
      const auto& b = g1.at(k);
      if (text_path(k)) {
        text0 = std::max(text0, a.abs().max().item<double>());
        text1 = std::max(text1, b.abs().max().item<double>());
        continue;
      }
      worst = std::max(worst, (a - b).abs().max().item<double>());
      norm = std::max(norm, a.abs().max().item<double>());
    }
    EXPECT_GT(norm, 0);
    EXPECT_LT(worst, 1e-5 * std::max(1.0, norm)) << "window " << window;
    EXPECT_EQ(text0, 0) << "the cross-attention cache was built without grad";
    EXPECT_GT(text1, 0) << "checkpointed blocks recompute the text path with grad";
  }
}

}  // namespace
}  // namespace causvid

namespace causvid {
namespace {

// Self-Forcing's cut of a long rollout: the window's last F - 1 frames pass through with
// their gradient; its first frame is the VAE encoding of the last pixel frame decoded from
// the frames before them, without grad.
TEST(SelfForcingRollout, ReencodedWindowStartsWithTheEncodedLastPixelFrameBeforeIt) {
  torch::manual_seed(5);
  models::WanVAEConfig vc;
  vc.dim = vc.z_dim = 4;
  models::WanVAEWrapper vae(vc, torch::randn({4}) * 0.1, torch::rand({4}) + 0.5);
  auto video = torch::randn({2, 5, 4, 4, 4}).requires_grad_(true);
  auto w = inference::reencoded_window(vae, video, 3);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{2, 3, 4, 4, 4}));
  EXPECT_TRUE(torch::equal(w.slice(1, 1).detach(), video.slice(1, 3).detach()));
  auto pixels = vae.decode_to_pixel(video.slice(1, 0, 3).detach());  // 9 pixel frames
  ASSERT_EQ(pixels.size(1), 9);
  auto want = vae.encode_to_latent(pixels.slice(1, 8).permute({0, 2, 1, 3, 4}));
  EXPECT_TRUE(torch::allclose(w.slice(1, 0, 1).detach(), want, 1e-5, 1e-6));
  // Changing the earlier frames changes the first frame (it is not a copy of a latent).
  EXPECT_FALSE(torch::allclose(w.slice(1, 0, 1).detach(), video.slice(1, 2, 3).detach()));
  w.sum().backward();
  EXPECT_TRUE(torch::equal(video.grad().slice(1, 0, 3), torch::zeros({2, 3, 4, 4, 4})));
  EXPECT_TRUE(torch::equal(video.grad().slice(1, 3), torch::ones({2, 2, 4, 4, 4})));
  testing::expect_error_contains([&] { inference::reencoded_window(vae, video, 5); },
                                 {"reencoded_window", "N > F = 5"});
}

}  // namespace
}  // namespace causvid
