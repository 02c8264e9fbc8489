// tests/inference/causal_teacher_test.cpp: the causal teacher's KV-cache Euler sampler
// (sample_causal_teacher, what `ode-pairs --causal-teacher` runs). Its first block sees no
// context, so it is the teacher sampler of that block alone; later blocks depend on the
// earlier ones only through the cache.
#include <gtest/gtest.h>

#include "inference/causal_pipeline.h"
#include "models/wan/wan_model.h"
#include "models/wan/wan_wrapper.h"

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
