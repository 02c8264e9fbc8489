// trainer/stages/generator_inputs.cpp: see generator_inputs.h.
#include "trainer/stages/generator_inputs.h"

#include "inference/step_list.h"
#include "losses/losses.h"

namespace causvid::trainer {
namespace {

// Inputs from the generator's own sampler (CausVid's BidirectionalInferenceWrapper.
// inference_with_trajectory): input 0 = noise, input i = the prediction at step i-1 re-noised
// to step i, with fresh noise even when step i is 0 (add_noise at t = 0 uses the grid's last
// sigma, 0.0079, as the reference does; it never returns the bare prediction).
std::vector<torch::Tensor> simulate_inputs(StageEnv& env, models::WanDiffusionWrapper& g,
                                           const torch::Tensor& cond, const torch::Tensor& steps,
                                           const std::vector<int64_t>& shape) {
  const auto& c = env.cfg;
  TORCH_CHECK(!g.causal(), c.source, ": backward_simulation with a causal generator is not "
              "supported (CausVid's causal configs set backward_simulation: false and take "
              "clean latents from data_path)");
  const int64_t S = steps.size(0), B = shape[0], F = shape[1];
  const auto f32 = torch::TensorOptions(torch::kFloat32).device(env.device);
  std::vector<torch::Tensor> inputs;
  auto x = env.randn(shape);
  for (int64_t i = 0; i < S; ++i) {
    inputs.push_back(x);
    const double ti = steps[i].item<double>();
    if (i + 1 == S) break;
    auto pred = g.forward(x, torch::full({B, F}, ti, f32), cond);
    const double tn = steps[i + 1].item<double>();
    auto flat = pred.flatten(0, 1);
    x = g.scheduler()
            .add_noise(flat, env.randn(flat.sizes()), torch::full({B * F}, tn, f32))
            .view(pred.sizes());
  }
  return inputs;
}

// Inputs from clean latents noised to every step of the list.
std::vector<torch::Tensor> noised_inputs(StageEnv& env, models::WanDiffusionWrapper& g,
                                         const torch::Tensor& clean, const torch::Tensor& steps,
                                         const std::vector<int64_t>& shape) {
  TORCH_CHECK(clean.defined(), "run_generator: no clean latents");
  const int64_t S = steps.size(0), BF = shape[0] * shape[1];
  const auto f32 = torch::TensorOptions(torch::kFloat32).device(env.device);
  std::vector<torch::Tensor> inputs;
  for (int64_t i = 0; i < S; ++i) {
    const double ti = steps[i].item<double>();
    auto noise = env.randn(shape);
    if (ti == 0) {
      inputs.push_back(clean);
    } else {
      inputs.push_back(g.scheduler()
                           .add_noise(clean.flatten(0, 1), noise.flatten(0, 1),
                                      torch::full({BF}, ti, f32))
                           .view(clean.sizes()));
    }
  }
  return inputs;
}

}  // namespace

torch::Tensor run_generator(StageEnv& env, TrainModel& gen, const torch::Tensor& cond,
                            const torch::Tensor& clean, bool backward_simulation, bool grad) {
  const auto& c = env.cfg;
  const int64_t B = cond.size(0);
  const auto shape = env.batch_shape(B);
  const auto steps = inference::training_step_list(c);
  const int64_t S = steps.size(0), F = shape[1];
  auto& g = gen.wrap();
  std::vector<torch::Tensor> inputs;  // S x [B,F,C,H,W]
  {
    torch::NoGradGuard ng;
    inputs = backward_simulation ? simulate_inputs(env, g, cond, steps, shape)
                                 : noised_inputs(env, g, clean, steps, shape);
  }
  auto stacked = torch::stack(inputs, 1);  // [B,S,F,C,H,W]
  auto index = env.rng.randint(0, S, {B, F}, torch::TensorOptions().dtype(torch::kLong));
  index = losses::process_timestep(index, c.generator_task, c.num_frame_per_block);
  auto gidx = index.to(env.device)
                  .view({B, 1, F, 1, 1, 1})
                  .expand({B, 1, F, shape[2], shape[3], shape[4]});
  auto noisy = stacked.gather(1, gidx).squeeze(1);
  auto t = steps.index({index.flatten()}).view({B, F}).to(env.device);
  torch::AutoGradMode ag(grad);
  return g.forward(noisy, t, cond);
}

}  // namespace causvid::trainer
