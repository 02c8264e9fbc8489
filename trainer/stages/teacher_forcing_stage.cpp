// trainer/stages/teacher_forcing_stage.cpp: autoregressive diffusion of the causal model
// (Causal Forcing's stage 1, thu-ml/Causal-Forcing model/diffusion.py CausalDiffusion, also
// Self-Forcing's trainer: diffusion): flow matching on clean video latents with one timestep
// per block, drawn from the generator's 1000-step grid, the loss per frame weighted by the
// grid's training weight. With teacher_forcing the sequence carries the clean frames too
// and each noisy block attends to the clean blocks before it (the causal teacher that
// Causal Forcing distils its ODE pairs from: `ode-pairs` with this checkpoint and the causal
// sampler); without, the plain block-causal mask over the noisy frames (diffusion forcing).
// noise_augmentation_max_timestep noises the clean context with the same noise.
#include <torch/torch.h>

#include "losses/losses.h"
#include "trainer/stage.h"

namespace causvid::trainer {
namespace {

class TeacherForcingStage : public GeneratorStage {
 public:
  explicit TeacherForcingStage(StageEnv& env) : GeneratorStage(env) {}

  bool needs_latents() const override { return true; }

  std::map<std::string, double> step(const StepInput& in) override {
    return generator_only_step(in, [&](const MicroBatch& mb) { return loss(mb); });
  }

 private:
  // Grid timesteps [B,F] of indices drawn in [lo, 1000), one per block (_get_timestep).
  torch::Tensor block_timesteps(int64_t B, int64_t F, int64_t lo) {
    const auto& c = env_.cfg;
    const auto& grid = gen_->wrap().scheduler().timesteps;
    auto idx = env_.rng.randint(lo, grid.size(0), {B, F}, torch::TensorOptions().dtype(torch::kLong));
    idx = losses::process_timestep(idx, "causal_video", c.num_frame_per_block);
    return grid.index({idx.flatten().to(grid.device())}).view({B, F}).to(env_.device);
  }

  torch::Tensor loss(const MicroBatch& mb) {
    const auto& c = env_.cfg;
    auto& g = gen_->wrap();
    const auto& sch = g.scheduler();
    const auto& lat = mb.batch->latents;
    auto clean = lat.select(1, lat.size(1) - 1);
    const int64_t B = clean.size(0), F = clean.size(1);
    auto noise = env_.randn(clean.sizes());
    auto t = block_timesteps(B, F, 0);
    auto noisy = sch.add_noise(clean.flatten(0, 1), noise.flatten(0, 1), t.flatten())
                     .view(clean.sizes());
    auto target = noise - clean;
    torch::Tensor context = clean, context_t;
    if (c.noise_augmentation_max_timestep > 0) {
      context_t = block_timesteps(B, F, c.noise_augmentation_max_timestep);
      context = sch.add_noise(clean.flatten(0, 1), noise.flatten(0, 1), context_t.flatten())
                    .view(clean.sizes());
    }
    auto flow = c.teacher_forcing ? g.flow_teacher_forcing(noisy, t, mb.cond, context, context_t)
                                  : g.flow(noisy, t, mb.cond);
    auto per_frame = (flow.to(torch::kFloat32) - target.to(torch::kFloat32)).pow(2).mean({2, 3, 4});
    auto weight = sch.training_weight(t.flatten()).to(per_frame.device()).view({B, F});
    return (per_frame * weight).mean();
  }
};

}  // namespace

void register_teacher_forcing_stage() {
  register_stage("teacher_forcing",
                 [](StageEnv& env) { return std::make_unique<TeacherForcingStage>(env); });
}

}  // namespace causvid::trainer
