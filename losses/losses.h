// losses/losses.h: CausVid's distillation losses, stateless. Ports causvid/dmd.py
// (DMD._process_timestep, _compute_kl_grad, compute_distribution_matching_loss,
// critic_loss), causvid/loss.py (denoising losses) and causvid/ode_regression.py
// (ODERegression._prepare_generator_input, generator_loss).
// Random draws (timesteps, noise, indices) are separate functions so that the fixtures can
// feed the reference's draws; the samplers draw from the stage's core::RandomSource.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>

#include "core/random.h"
#include "models/wan/wan_wrapper.h"

namespace causvid::losses {

struct LossOutput {
  torch::Tensor loss;
  std::map<std::string, torch::Tensor> tensors;  // intermediates (for logs and fixtures)
  std::map<std::string, double> metrics;
};

// "bidirectional_video": every frame takes frame 0's value; "causal_video": every frame of a
// block takes the block's first value. Other types are an error naming the type.
torch::Tensor process_timestep(const torch::Tensor& t_BF, const std::string& task_type,
                               int64_t num_frame_per_block);

// DMD/critic timesteps: randint(0, T) [B,F], processed per task type, shifted, clamped to
// [min_step, max_step] (float32).
torch::Tensor sample_dmd_timestep(int64_t B, int64_t F, const std::string& task_type,
                                  int64_t num_frame_per_block, double timestep_shift,
                                  double min_step, double max_step, core::RandomSource& rng,
                                  int64_t num_train_timestep = 1000);

struct DmdOptions {
  double real_guidance_scale = 3.5;
  double fake_guidance_scale = 0.0;  // Self-Forcing: CFG of the critic (0 = none)
  bool normalization = true;
  // The grid that noises x0 (Self-Forcing: the generator's, shift 5; null = the fake
  // score's, which CausVid shares with every model).
  const models::FlowMatchScheduler* scheduler = nullptr;
  // Bool [B,F,C,H,W] (or broadcastable): the loss is the mean over the selected elements
  // only (Self-Forcing's gradient_mask); undefined = all.
  torch::Tensor mask;
};

// Distribution matching loss of the generator output x0 [B,F,C,H,W] (with grad) at the given
// (processed, shifted, clamped) timestep [B,F] and noise. The scores run without grad.
// CFG as the reference writes it: cond + g * (cond - uncond).
LossOutput dmd_loss(const models::WanDiffusionWrapper& real_score,
                    const models::WanDiffusionWrapper& fake_score, const torch::Tensor& x0,
                    const torch::Tensor& timestep, const torch::Tensor& noise,
                    const torch::Tensor& cond, const torch::Tensor& uncond,
                    const DmdOptions& opts);

// Critic (fake score) denoising loss on a generated sample x0 (no grad):
// denoising_loss_type "flow" (default for Wan), "x0" or "noise".
// `scheduler` noises x0 and converts the prediction to flow (null = the fake score's).
LossOutput critic_loss(const models::WanDiffusionWrapper& fake_score, const torch::Tensor& x0,
                       const torch::Tensor& timestep, const torch::Tensor& noise,
                       const torch::Tensor& cond, const std::string& denoising_loss_type,
                       const models::FlowMatchScheduler* scheduler = nullptr);

// ODE regression: ode_latent [B,S,F,C,H,W] (noisy -> clean), index [B,F] into the step list
// (already processed per task type), step list [S] (effective values). Masked MSE where the
// timestep is non-zero.
LossOutput ode_loss(const models::WanDiffusionWrapper& generator, const torch::Tensor& ode_latent,
                    const torch::Tensor& index, const torch::Tensor& denoising_step_list,
                    const torch::Tensor& cond);

// ODE indices: randint(0, S) [B,F], processed per task type.
torch::Tensor sample_ode_index(int64_t B, int64_t F, int64_t S, const std::string& task_type,
                               int64_t num_frame_per_block, core::RandomSource& rng);

}  // namespace causvid::losses
