// trainer/stages/generator_inputs.h: the generator's training inputs and its x0 prediction
// (CausVid's DMD._run_generator): the noisy input at a random index of the denoising step
// list (per frame, processed per generator_task), taken from backward simulation (the
// generator's own few-step sampler from noise) or from noised clean latents.
#pragma once

#include <torch/torch.h>

#include "trainer/stage.h"

namespace causvid::trainer {

// cond [B, T, E]; clean [B, F, C, H, W] (may be undefined with backward_simulation).
// grad: whether the prediction carries gradient to the generator.
torch::Tensor run_generator(StageEnv& env, TrainModel& gen, const torch::Tensor& cond,
                            const torch::Tensor& clean, bool backward_simulation, bool grad);

}  // namespace causvid::trainer
