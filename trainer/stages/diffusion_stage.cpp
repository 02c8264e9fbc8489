// trainer/stages/diffusion_stage.cpp: flow-matching training of the generator (Wan's own
// objective; used to train small teachers and to fine-tune): t from the shifted 1000-step
// training grid, uniform per sample (per block for causal_video), x_t = (1 - s) x0 + s n,
// target n - x0, with text_dropout of the prompt (to the negative prompt) for classifier-free
// guidance. Its sample sheets use the teacher's sampler (sample_teacher_steps, CFG when
// trained with dropout).
#include <torch/torch.h>

#include "core/random.h"
#include "inference/causal_pipeline.h"
#include "losses/losses.h"
#include "trainer/stage.h"

namespace causvid::trainer {
namespace {

class DiffusionStage : public GeneratorStage {
 public:
  explicit DiffusionStage(StageEnv& env) : GeneratorStage(env) {}

  bool needs_latents() const override { return true; }

  std::map<std::string, double> step(const StepInput& in) override {
    return generator_only_step(in, [&](const MicroBatch& mb) { return loss(mb); });
  }

 private:
  // Flow matching on one micro-batch: x_t at a uniform grid timestep per block, target
  // noise - x0 (optionally on the negative prompt for CFG: text_dropout).
  torch::Tensor loss(const MicroBatch& mb) {
    const auto& c = env_.cfg;
    const int64_t B = mb.cond.size(0), F = env_.frame_shape[0];
    auto& g = gen_->wrap();
    const auto& lat = mb.batch->latents;
    auto x0 = lat.select(1, lat.size(1) - 1);
    auto cond = mb.cond;
    if (c.text_dropout > 0) {
      auto drop = env_.rng.rand({B}, torch::TensorOptions().device(env_.device)) <
                  c.text_dropout;
      cond = torch::where(drop.view({B, 1, 1}), env_.uncond(B), mb.cond);
    }
    const auto& grid = g.scheduler().timesteps;
    auto idx =
        env_.rng.randint(0, grid.size(0), {B, F}, torch::TensorOptions().dtype(torch::kLong));
    idx = losses::process_timestep(idx, c.generator_task, c.num_frame_per_block);
    auto t = grid.index({idx.flatten()}).view({B, F}).to(env_.device);
    auto noise = env_.randn(x0.sizes());
    auto xt = g.scheduler()
                  .add_noise(x0.flatten(0, 1), noise.flatten(0, 1), t.flatten())
                  .view(x0.sizes());
    auto flow = g.flow(xt, t, cond);
    return torch::mse_loss(flow.to(torch::kFloat32), noise - x0);
  }

 public:
  // A bidirectional model trained here is a teacher: its sheets use the teacher's sampler.
  torch::Tensor sample(const torch::Tensor& noise, const torch::Tensor& cond,
                       at::Generator& g) override {
    auto& w = gen_->wrap();
    if (w.causal()) return Stage::sample(noise, cond, g);
    const auto& c = env_.cfg;
    const bool cfg = c.text_dropout > 0;
    const int64_t n = noise.size(0), steps = env_.teacher_sample_steps;
    auto scope = gen_->sharded().gathered();
    return inference::sample_teacher(w, noise, cond, cfg ? env_.uncond(n) : cond, steps,
                                     cfg ? c.real_guidance_scale : 0.0, c.scheduler_shift)
        .trajectory.select(1, steps);
  }
};

}  // namespace

void register_diffusion_stage() {
  register_stage("diffusion",
                 [](StageEnv& env) { return std::make_unique<DiffusionStage>(env); });
}

}  // namespace causvid::trainer
