// models/wan/flow_match.h: FlowMatchScheduler, a port of causvid/models/wan/flow_match.py
// (DiffSynth's scheduler as CausVid vendors it) plus the flow <-> x0 conversions of
// causvid/models/wan/wan_wrapper.py and the timestep warps of dmd.py / causal_inference.py.
// Same float32 op order as the reference for the grids; conversions in float64 as the
// reference does. Timestep lookups pick the NEAREST grid point (argmin |grid - t|, first
// index on ties), never floor.
#pragma once

#include <torch/torch.h>

namespace causvid::models {

struct FlowMatchOptions {
  double shift = 3.0;
  double sigma_max = 1.0;
  double sigma_min = 0.003 / 1.002;
  int64_t num_train_timesteps = 1000;
  bool inverse_timesteps = false;
  bool extra_one_step = false;
  bool reverse_sigmas = false;
};

class FlowMatchScheduler {
 public:
  explicit FlowMatchScheduler(const FlowMatchOptions& opts = {}, int64_t num_inference_steps = 100);
  // The grid every WanDiffusionWrapper uses (CausVid: shift 8, sigma_min 0, extra_one_step,
  // set_timesteps(1000, training=True)). Called "G1000" in the fixtures' docs.
  static FlowMatchScheduler wan_training(double shift = 8.0);
  // The teacher's sampling grid: shift, sigma_min 0, extra_one_step, N steps, not training.
  static FlowMatchScheduler wan_sampling(int64_t num_inference_steps, double shift = 8.0);

  void set_timesteps(int64_t num_inference_steps, double denoising_strength = 1.0,
                     bool training = false);

  // Nearest grid index per element of t (any shape, flattened) -> int64 [n].
  torch::Tensor lookup(const torch::Tensor& t) const;
  // (1 - sigma) x + sigma noise; t has one value per leading element of x (t may be [B,F]
  // with x [B*F,...] or [B,F,...]: it is flattened). Returns noise's dtype.
  torch::Tensor add_noise(const torch::Tensor& x, const torch::Tensor& noise,
                          const torch::Tensor& t) const;
  // One Euler step: x + f (sigma' - sigma). If any element is at the last grid point (or
  // to_final), sigma' = 0 for EVERY element (the reference's batch quirk).
  torch::Tensor step(const torch::Tensor& model_output, const torch::Tensor& t,
                     const torch::Tensor& sample, bool to_final = false) const;
  torch::Tensor training_target(const torch::Tensor& sample, const torch::Tensor& noise) const {
    return noise - sample;
  }
  torch::Tensor training_weight(const torch::Tensor& t) const;
  // float64 conversions, result in the input's dtype.
  torch::Tensor x0_from_flow(const torch::Tensor& flow, const torch::Tensor& xt,
                             const torch::Tensor& t) const;
  torch::Tensor flow_from_x0(const torch::Tensor& x0, const torch::Tensor& xt,
                             const torch::Tensor& t) const;
  // sigma of each timestep (float32 [n]).
  torch::Tensor sigma_at(const torch::Tensor& t) const;

  const FlowMatchOptions& options() const { return opts_; }
  torch::Tensor sigmas, timesteps, linear_timesteps_weights;  // float32 [N]

 private:
  torch::Tensor per_sample(const torch::Tensor& s, const torch::Tensor& like) const;
  FlowMatchOptions opts_;
};

// DMD's timestep warp: t = s*(r/1000)/(1+(s-1)*(r/1000))*1000 in float32, then clamped to
// [min_step, max_step]. r is the raw integer timestep (int64, any shape).
torch::Tensor shift_timestep(const torch::Tensor& raw, double timestep_shift, double min_step,
                             double max_step, int64_t num_train_timestep = 1000);

// warp_denoising_step: list' = cat(G1000.timesteps, [0])[1000 - list] (float32).
torch::Tensor warp_denoising_steps(const torch::Tensor& list_i64,
                                   const FlowMatchScheduler& training_grid);

}  // namespace causvid::models
