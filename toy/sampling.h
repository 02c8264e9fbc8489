// toy/sampling.h: samples a set of toy videos from a checkpoint with the sampler of a stage
// (the teacher's N-step CFG Euler sampler, the stage-1 student's few-step sampler, or the
// causal student's KV-cache pipeline). Shared by `causvid eval toy` and `causvid toy run`.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace causvid::toy {

struct SampleArgs {
  std::string config, checkpoint, which, sampler;
  std::vector<std::string> sets;  // config overrides
  int64_t steps = 50, frames = 0, batch = 16, seed = 0;
  double guidance = -1, shift = 0;
  // Causal sampler: rolling KV cache of window_frames latent frames (< 0: the whole video)
  // with sink_frames kept (inference/causal_pipeline.h).
  int64_t window_frames = -1, sink_frames = 0;
  std::string device = "cpu";  // auto | cpu | cuda | cuda:N (noise is drawn on the CPU)
  bool quiet = false;          // no progress lines (core/progress.h)
};

// [N, F, C, H, W] float32 for the prompts (batches of a.batch, noise from seed a.seed).
torch::Tensor sample_from_checkpoint(const SampleArgs& a, const std::vector<std::string>& prompts);

}  // namespace causvid::toy
