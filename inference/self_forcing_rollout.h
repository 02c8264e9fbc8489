// inference/self_forcing_rollout.h: the causal generator's autoregressive rollout as
// Self-Forcing trains on it (guandeh17/Self-Forcing pipeline/self_forcing_training.py,
// SelfForcingTrainingPipeline.inference_with_trajectory). Block by block with the KV cache:
// the few-step loop over the denoising step list stops at the block's exit step, whose x0
// prediction is the block's output; only that call carries gradient, and only for blocks
// that start inside the last `grad_frames` frames; the output, re-noised to `context_noise`,
// is then written into the cache by a no-grad pass. Every other call runs without grad.
// Long tuning (LongLive) uses the same rollout with a rolling cache (window + sink).
//
// Random draws go through core::RandomSource, in the reference's order: the exit steps
// (draw_exit_steps, one randint per rollout), then per block one randn [B*f,C,H,W] per
// step before the exit (re-noising) and one for the context noise.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <vector>

#include "core/random.h"
#include "models/vae/wan_vae.h"
#include "models/wan/wan_wrapper.h"

namespace causvid::inference {

struct RolloutOptions {
  std::vector<double> step_list;  // effective (warped) steps, without a trailing 0
  int64_t num_frame_per_block = 3;
  bool same_step_across_blocks = true;
  double context_noise = 0;
  // Blocks starting before (output frames - grad_frames) run without grad (the reference
  // hard-codes 21, its training length: image_or_video_shape[1] here).
  int64_t grad_frames = 21;
  int64_t window_frames = -1;  // rolling KV cache (< 0: plain cache for the whole rollout)
  int64_t sink_frames = 0;
};

struct RolloutResult {
  torch::Tensor video;  // [B, Fi + F, C, H, W]: the initial latent (if any), then the blocks
  // The exit step's range on the 1000-step grid (Self-Forcing's denoised_timestep_from /
  // _to), set only with same_step_across_blocks.
  std::optional<int64_t> timestep_from, timestep_to;
};

// The exit step index per block: randint(0, S) [num_blocks], all S - 1 with last_step_only
// (drawn anyway, as the reference does). In distributed training the caller broadcasts
// rank 0's draw.
std::vector<int64_t> draw_exit_steps(core::RandomSource& rng, int64_t num_blocks, int64_t S,
                                     bool last_step_only);

// noise [B, F, C, H, W] (F a multiple of the block size), cond [B, T, E], initial_latent
// [B, 1, C, H, W] or undefined (image-to-video: cached first as a clean frame), exits from
// draw_exit_steps. Gradient flows when grad mode is on.
RolloutResult self_forcing_rollout(const models::WanDiffusionWrapper& generator,
                                   const torch::Tensor& noise, const torch::Tensor& cond,
                                   const torch::Tensor& initial_latent,
                                   const std::vector<int64_t>& exits, core::RandomSource& rng,
                                   const RolloutOptions& opts);

// SelfForcingModel._run_generator's cut of a rollout longer than the training length F:
// the last F frames of `video` [B, N, C, h, w] (N > F), the first of them re-encoded without
// grad: the latents before the last F - 1 frames are decoded, and their last pixel frame is
// encoded as a one-frame video, so the window starts as a video's first frame would.
torch::Tensor reencoded_window(models::WanVAEWrapper& vae, const torch::Tensor& video, int64_t F);

}  // namespace causvid::inference
