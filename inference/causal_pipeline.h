// inference/causal_pipeline.h: the causal student's autoregressive sampler with the KV
// cache, a port of causvid/models/wan/causal_inference.py InferencePipeline.inference.
// Per block of num_frame_per_block latent frames: the few-step loop over the denoising
// step list (x0 prediction, then re-noising to the next step with fresh noise), then a
// timestep-0 pass of the clean block that writes it into the KV cache. Optional start
// latents (image-to-video, long-video rollout) are written into the cache as clean context
// blocks first. Training (backward simulation) and inference share this code.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>

#include "models/wan/wan_wrapper.h"

namespace causvid::inference {

struct CausalSamplerOptions {
  std::vector<double> denoising_step_list = {1000, 757, 522};  // effective (warped) values
  int64_t num_frame_per_block = 3;
  // Rolling KV cache (constant cost per block): window in latent frames (< 0: plain cache
  // sized for the whole video) and sink frames kept forever.
  int64_t window_frames = -1;
  int64_t sink_frames = 0;
};

// Called after each block is final: (block index, clean latents [B,f,C,H,W]).
using BlockFn = std::function<void(int64_t, const torch::Tensor&)>;

class CausalPipeline {
 public:
  CausalPipeline(models::WanDiffusionWrapper& generator, CausalSamplerOptions opts);

  // noise [B,F,C,H,W] (F a multiple of num_frame_per_block), context [B,T,E]; start
  // latents [B,Fs,C,H,W] (Fs a multiple of the block size) are used as the first blocks.
  // Fresh re-noising noise comes from `gen` (CPU generator) when given.
  torch::Tensor generate(const torch::Tensor& noise, const torch::Tensor& context,
                         const torch::Tensor& start_latents = torch::Tensor(),
                         c10::optional<at::Generator> gen = c10::nullopt,
                         const BlockFn& on_block = nullptr);

  // Switch the text conditioning from the next block on (dynamic prompting): the
  // cross-attention cache is refreshed, the self-attention cache is kept.
  void set_context(const torch::Tensor& context);

  // Generation state for streaming use: reset() then step_block() for each block.
  void reset(int64_t batch, int64_t frame_seqlen, int64_t total_frames);
  torch::Tensor step_block(const torch::Tensor& noise_block, int64_t block_index,
                           c10::optional<at::Generator> gen = c10::nullopt);
  void write_context_block(const torch::Tensor& clean_block, int64_t block_index);
  // Frame-addressed forms of the two above: the block starts at latent frame `start_frame`
  // (image-to-video writes a 1-frame image context first, so later blocks start at frame
  // 1 + k * num_frame_per_block, as CausVid's causal_inference_i2v.py).
  torch::Tensor step_frames(const torch::Tensor& noise_block, int64_t start_frame,
                            c10::optional<at::Generator> gen = c10::nullopt);
  void write_context_frames(const torch::Tensor& clean_block, int64_t start_frame);

  models::KvCache* cache() { return cache_.get(); }
  const CausalSamplerOptions& options() const { return opts_; }

 private:
  models::WanDiffusionWrapper& gen_;
  CausalSamplerOptions opts_;
  std::unique_ptr<models::KvCache> cache_;
  models::CrossAttnCache xcache_;
  torch::Tensor context_;
  int64_t frame_seqlen_ = 0;
};

// Bidirectional few-step sampling of a whole clip (stage-1 student): for each step,
// x0 = G(x, t); re-noise to the next step with fresh noise. Returns the final x0.
torch::Tensor sample_bidirectional(const models::WanDiffusionWrapper& generator,
                                   const torch::Tensor& noise, const torch::Tensor& context,
                                   const std::vector<double>& denoising_step_list,
                                   c10::optional<at::Generator> gen = c10::nullopt);

// The teacher's N-step Euler sampler with classifier-free guidance (generate_ode_pairs.py):
// x0 = u + g (c - u) with u/c the unconditional/conditional x0 predictions; flow from x0 on
// the sampling grid; Euler step on the sampling grid. Returns the trajectory
// [B, N+1, F, C, H, W] (noise first, final latent last) and optionally per-step details.
struct TeacherTrajectory {
  torch::Tensor trajectory;          // [B,N+1,F,C,H,W]
  torch::Tensor x0_cond, x0_uncond, flow;  // [B,N,F,C,H,W] when keep_details
  torch::Tensor timesteps, sigmas;   // [N] of the sampling grid
};
TeacherTrajectory sample_teacher(const models::WanDiffusionWrapper& teacher,
                                 const torch::Tensor& noise, const torch::Tensor& cond,
                                 const torch::Tensor& uncond, int64_t num_steps,
                                 double guidance_scale, double shift = 8.0,
                                 bool keep_details = false);

// The same Euler sampler with CFG for a causal teacher (Causal Forcing's AR-diffusion
// model, trained by the teacher_forcing stage), block by block with the KV cache: each
// block runs the N steps over its own frames with the finished blocks as context (one cache
// per CFG branch), then is cached at timestep 0. The trajectory [B,N+1,F,C,H,W] holds at
// point i every block's i-th point (what ode-pairs keeps for the causal ODE stage).
TeacherTrajectory sample_causal_teacher(const models::WanDiffusionWrapper& teacher,
                                        const torch::Tensor& noise, const torch::Tensor& cond,
                                        const torch::Tensor& uncond, int64_t num_steps,
                                        double guidance_scale, double shift);

}  // namespace causvid::inference
