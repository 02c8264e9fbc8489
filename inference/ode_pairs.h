// inference/ode_pairs.h: `causvid ode-pairs`, the teacher's ODE trajectories as training
// pairs (moved from data/latent_tools.h: it runs the teacher sampler of this layer).
//
// generate_ode_pairs (`causvid ode-pairs`) ports causvid/models/wan/generate_ode_pairs.py:
// for each prompt the bidirectional teacher samples from Gaussian noise with the N-step
// Euler grid (shift 8) and classifier-free guidance on the negative prompt
// (inference::sample_teacher), and the trajectory points at `keep` (default [0, 36, 44, -1]
// of the N+1 points, noise first; the command and toy run pass keep_for_step_list below) are
// stored as one row [S, F, C, H, W]. The noise of prompt
// i comes from a CPU generator seeded seed + i, so the data do not depend on the number of
// ranks or on resuming. Deliberate difference: one shard per `shard_size` prompts (the
// reference writes one .pt per prompt) and existing shards are skipped (resumable); a prompt
// that fails is recorded (ToolStats::failures, the shard's failure file) and the others go
// on, where the reference's loop stops at the first exception.
// The teacher runs in float32 whatever mixed_precision says (the reference samples in
// bf16 on GPU); TODO(data): a bf16 teacher once sample_teacher is checked in bf16.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "data/latent_tools.h"
#include "models/t5/text_conditioner.h"
#include "models/wan/wan_wrapper.h"

namespace causvid::inference {

struct OdePairOptions {
  int64_t num_steps = 50;
  double guidance_scale = 6.0;
  double shift = 8.0;
  std::vector<int64_t> keep = {0, 36, 44, -1};  // trajectory indices, -1 = the last
  std::vector<int64_t> shape_FCHW;              // latent shape per sample
  std::string negative_prompt;
  int64_t seed = 0;
  int64_t shard_size = 16;  // prompts per shard
  std::string prefix = "ode_pairs";
  torch::ScalarType store_dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
};
// The indices of `keep` resolved against num_steps + 1 points; errors name --keep.
std::vector<int64_t> resolve_keep_indices(const std::vector<int64_t>& keep, int64_t num_steps);

// The trajectory points that carry a generator's denoising step list (`steps`, as
// inference::training_step_list gives it): for each step the point of the num_steps grid of
// `shift` whose timestep is nearest, 0 -> -1 (the clean end), and -1 appended when the list does
// not end in 0 (CausVid's rows end with the clean sample). For CausVid's [1000, 757, 522] at 50
// steps, shift 8 this is its [0, 36, 44, -1]; at another shift the same indices would label
// points of other noise levels with these timesteps. `max_error`, if given, receives the
// largest |grid timestep - step|.
std::vector<int64_t> keep_for_step_list(const torch::Tensor& steps, int64_t num_steps, double shift,
                                        double* max_error = nullptr);

data::ToolStats generate_ode_pairs(const models::WanDiffusionWrapper& teacher,
                             models::TextConditioner& text, const std::vector<std::string>& prompts,
                             const std::string& out_dir, const OdePairOptions& opts, int rank = 0,
                             int world_size = 1);

}  // namespace causvid::inference
