// inference/step_list.h: the generator's denoising step list as the config defines it, in one
// place for the trainer, its sample sheets, `generate`, `eval vbench` and `eval toy` (CausVid
// computes it in dmd.py for training and in causal_inference.py for sampling):
//   denoising_step_list, warped when warp_denoising_step through the training grid
//   cat(G1000(shift).timesteps, [0])[1000 - list]. The grid's shift is the one the
//   generator's wrapper uses: `scheduler_shift` (default 8.0, what CausVid's wrapper
//   hard-codes; the toy configs train their whole pipeline on 3). `timestep_shift` is only
//   the DMD / critic timestep shift, as in CausVid's dmd.py.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "core/config.h"

namespace causvid::inference {

// As the trainers use it (float32 [S], the trailing 0 kept).
torch::Tensor training_step_list(const core::Config& cfg);
// As the samplers use it: the same without a trailing 0 (the causal sampler's timestep-0 pass
// is the KV-cache write; CausVid's causal_inference.py drops it).
std::vector<double> sampling_step_list(const core::Config& cfg);

}  // namespace causvid::inference
