// inference/self_forcing_rollout.cpp: see self_forcing_rollout.h.
#include "inference/self_forcing_rollout.h"

namespace causvid::inference {

std::vector<int64_t> draw_exit_steps(core::RandomSource& rng, int64_t num_blocks, int64_t S,
                                     bool last_step_only) {
  TORCH_CHECK(num_blocks > 0 && S > 0, "draw_exit_steps: ", num_blocks, " blocks, ", S, " steps");
  auto t = rng.randint(0, S, {num_blocks}, torch::TensorOptions().dtype(torch::kLong))
               .to(torch::kCPU)
               .contiguous();
  std::vector<int64_t> exits(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + num_blocks);
  if (last_step_only) exits.assign(num_blocks, S - 1);
  return exits;
}

namespace {

// 1000 - argmin |grid - t| (the reference's denoised_timestep_from / _to).
int64_t grid_position(const models::FlowMatchScheduler& s, double t) {
  auto idx = (s.timesteps.to(torch::kCPU, torch::kFloat64) - t).abs().argmin().item<int64_t>();
  return s.options().num_train_timesteps - idx;
}

// One block: the denoising loop up to the exit step (the steps before it without grad,
// re-noised to the next step), the exit call (with grad when `grad`), then the block
// re-noised to context_noise (drawn also for 0) and cached by a no-grad pass.
torch::Tensor rollout_block(const models::WanDiffusionWrapper& g, torch::Tensor x,
                            const torch::Tensor& cond, models::KvCache& cache,
                            models::CrossAttnCache& xcache, int64_t start, int64_t fs,
                            int64_t exit, bool grad, core::RandomSource& rng,
                            const RolloutOptions& o) {
  const int64_t B = x.size(0), nfpb = x.size(1);
  const auto f32 = x.options().dtype(torch::kFloat32);
  const auto& sch = g.scheduler();
  const auto& steps = o.step_list;
  torch::Tensor pred;
  for (int64_t i = 0; i <= exit; ++i) {
    auto t = torch::full({B, nfpb}, steps[i], f32);
    if (i < exit) {
      torch::NoGradGuard ng;
      pred = g.forward_cached(x, t, cond, cache, xcache, start * fs);
      auto flat = pred.flatten(0, 1);
      x = sch.add_noise(flat, rng.randn(flat.sizes(), f32),
                        torch::full({B * nfpb}, steps[i + 1], f32))
              .view(pred.sizes());
    } else if (!grad) {
      torch::NoGradGuard ng;
      pred = g.forward_cached(x, t, cond, cache, xcache, start * fs);
    } else {
      pred = g.forward_cached(x, t, cond, cache, xcache, start * fs);
    }
  }
  auto flat = pred.flatten(0, 1);
  auto ctx = sch.add_noise(flat, rng.randn(flat.sizes(), f32),
                           torch::full({B * nfpb}, o.context_noise, f32))
                 .view(pred.sizes());
  torch::NoGradGuard ng;
  g.forward_cached(ctx.detach(), torch::full({B, nfpb}, o.context_noise, f32), cond, cache, xcache,
                   start * fs);
  return pred;
}

}  // namespace

RolloutResult self_forcing_rollout(const models::WanDiffusionWrapper& g, const torch::Tensor& noise,
                                   const torch::Tensor& cond, const torch::Tensor& initial_latent,
                                   const std::vector<int64_t>& exits, core::RandomSource& rng,
                                   const RolloutOptions& o) {
  TORCH_CHECK(g.causal(), "self_forcing_rollout: the generator must be a causal model");
  TORCH_CHECK(noise.dim() == 5, "self_forcing_rollout: noise ", noise.sizes(),
              ", want [B, F, C, H, W]");
  const int64_t B = noise.size(0), F = noise.size(1), H = noise.size(3), W = noise.size(4);
  const int64_t nfpb = o.num_frame_per_block;
  const auto& steps = o.step_list;
  const int64_t S = static_cast<int64_t>(steps.size());
  TORCH_CHECK(S > 0 && steps.back() != 0.0,
              "self_forcing_rollout: want a step list without a trailing 0");
  TORCH_CHECK(nfpb > 0 && F % nfpb == 0, "self_forcing_rollout: ", F,
              " noise frames are not a multiple of num_frame_per_block ", nfpb);
  const int64_t num_blocks = F / nfpb;
  TORCH_CHECK(static_cast<int64_t>(exits.size()) == num_blocks, "self_forcing_rollout: ",
              exits.size(), " exit steps for ", num_blocks, " blocks");
  for (int64_t e : exits)
    TORCH_CHECK(e >= 0 && e < S, "self_forcing_rollout: exit step ", e, " outside [0, ", S, ")");
  const int64_t Fi = initial_latent.defined() ? initial_latent.size(1) : 0;
  TORCH_CHECK(Fi <= 1, "self_forcing_rollout: initial_latent of ", Fi, " frames, want 1");
  const int64_t out_frames = Fi + F;

  const auto& ps = g.model()->config().patch_size;
  const int64_t fs = (H / ps[1]) * (W / ps[2]);
  auto co = g.model()->kv_cache_options(B, fs, out_frames);
  if (o.window_frames >= 0) {
    co.window_frames = o.window_frames;
    co.sink_frames = o.sink_frames;
  }
  models::KvCache cache(co);
  models::CrossAttnCache xcache;
  const auto f32 = noise.options().dtype(torch::kFloat32);
  const auto& sch = g.scheduler();

  std::vector<torch::Tensor> out;
  int64_t start = 0;  // current frame
  if (Fi > 0) {
    torch::NoGradGuard ng;
    out.push_back(initial_latent);
    g.forward_cached(initial_latent, torch::zeros({B, Fi}, f32), cond, cache, xcache, 0);
    start += Fi;
  }
  const int64_t grad_start = out_frames - o.grad_frames;
  for (int64_t b = 0; b < num_blocks; ++b) {
    const int64_t exit = o.same_step_across_blocks ? exits[0] : exits[b];
    out.push_back(rollout_block(g, noise.slice(1, start - Fi, start - Fi + nfpb), cond, cache,
                                xcache, start, fs, exit, start >= grad_start, rng, o));
    start += nfpb;
  }

  RolloutResult r;
  r.video = torch::cat(out, 1);
  if (o.same_step_across_blocks) {
    const int64_t e = exits[0];
    r.timestep_from = grid_position(sch, steps[e]);
    r.timestep_to = e == S - 1 ? 0 : grid_position(sch, steps[e + 1]);
  }
  return r;
}

torch::Tensor reencoded_window(models::WanVAEWrapper& vae, const torch::Tensor& video, int64_t F) {
  TORCH_CHECK(F >= 1 && video.dim() == 5 && video.size(1) > F, "reencoded_window: video ",
              video.sizes(), ", want [B, N, C, h, w] with N > F = ", F);
  torch::Tensor first;
  {
    torch::NoGradGuard ng;
    const int64_t n = video.size(1) - (F - 1);
    auto pixels = vae.decode_to_pixel(video.slice(1, 0, n));    // [B, T, 3, H, W]
    auto frame = pixels.slice(1, -1).permute({0, 2, 1, 3, 4});  // [B, 3, 1, H, W]
    first = vae.encode_to_latent(frame).to(video.dtype());      // [B, 1, C, h, w]
  }
  return torch::cat({first, video.slice(1, video.size(1) - (F - 1))}, 1);
}

}  // namespace causvid::inference
