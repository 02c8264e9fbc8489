// models/wan/wan_wrapper.h: the diffusion wrapper the losses and pipelines call, a port of
// causvid/models/wan/wan_wrapper.py WanDiffusionWrapper: input and output in CausVid's
// layout [B, F, C, H, W]; the network's flow prediction is converted to an x0 prediction in
// float64 on the G1000 grid (shift 8). Bidirectional models use timestep[:, 0]
// (uniform_timestep); causal models take the per-frame timesteps and block-causal attention
// (training) or the KV cache (inference).
#pragma once

#include <torch/torch.h>

#include "models/wan/flow_match.h"
#include "models/wan/wan_model.h"

namespace causvid::models {

class WanDiffusionWrapper {
 public:
  // causal: CausalWanModel semantics with num_frame_per_block latent frames per block.
  WanDiffusionWrapper(WanModel model, bool causal, int64_t num_frame_per_block = 3,
                      double timestep_shift = 8.0);

  // x0 prediction [B,F,C,H,W] from noisy x [B,F,C,H,W] at timestep [B,F].
  torch::Tensor forward(const torch::Tensor& x_BFCHW, const torch::Tensor& t_BF,
                        const torch::Tensor& context_BTE) const;
  // Causal inference on one block with the KV cache (global token offset current_start).
  torch::Tensor forward_cached(const torch::Tensor& x_BFCHW, const torch::Tensor& t_BF,
                               const torch::Tensor& context_BTE, KvCache& cache,
                               CrossAttnCache& xcache, int64_t current_start) const;
  // Teacher forcing (causal only): the flow prediction of noisy x [B,F,C,H,W] at t [B,F]
  // with the clean context `clean` [B,F,C,H,W] (its timestep clean_t [B,F]; undefined = 0).
  torch::Tensor flow_teacher_forcing(const torch::Tensor& x_BFCHW, const torch::Tensor& t_BF,
                                     const torch::Tensor& context_BTE, const torch::Tensor& clean,
                                     const torch::Tensor& clean_t) const;
  // The raw flow prediction in [B,F,C,H,W] (no conversion).
  torch::Tensor flow(const torch::Tensor& x_BFCHW, const torch::Tensor& t_BF,
                     const torch::Tensor& context_BTE) const;

  WanModel& model() { return model_; }
  const WanModel& model() const { return model_; }
  const FlowMatchScheduler& scheduler() const { return scheduler_; }
  bool causal() const { return causal_; }
  int64_t num_frame_per_block() const { return nfpb_; }

 private:
  torch::Tensor to_x0(const torch::Tensor& flow_BCFHW, const torch::Tensor& x_BFCHW,
                      const torch::Tensor& t_BF) const;
  mutable WanModel model_;  // holder constness does not propagate to the module
  bool causal_;
  int64_t nfpb_;
  FlowMatchScheduler scheduler_;
};

}  // namespace causvid::models
