// trainer/stages/dmd_stage.cpp: CausVid's distribution matching distillation
// (causvid/dmd.py, train_distillation.py): a generator (bidirectional, or causal for the
// asymmetric stage) regressed along the DMD gradient between a frozen real score (the
// teacher, with CFG on the negative prompt) and a critic (fake score) trained with the
// flow-matching loss on the generator's samples. The generator is updated every
// dfake_gen_update_ratio steps, the critic every step. Generator inputs come from backward
// simulation (prompts only) or from noised dataset latents (backward_simulation: false).
#include <torch/torch.h>

#include "losses/losses.h"
#include "trainer/stage.h"
#include "trainer/stages/score_models.h"
#include "trainer/stages/generator_inputs.h"

namespace causvid::trainer {
namespace {

class DmdStage : public ScoreDistillationStage {
 public:
  explicit DmdStage(StageEnv& env) : ScoreDistillationStage(env) {}

  bool needs_latents() const override { return !env_.cfg.backward_simulation; }

  std::map<std::string, double> step(const StepInput& in) override {
    const auto& c = env_.cfg;
    std::map<std::string, double> m;
    auto fake_scope = fake_->sharded().gathered();
    if (gen_->trainable() && in.step % c.dfake_gen_update_ratio == 0) generator_step(in, m);
    // Critic: flow matching on the generator's (detached) samples; fake_score_grad
    // {model: false} keeps a fixed critic.
    if (fake_->trainable()) critic_step(in, m);
    return m;
  }

 private:
  torch::Tensor sample_t(int64_t B, const std::string& task) {
    const auto& c = env_.cfg;
    const double T = c.num_train_timestep;
    return losses::sample_dmd_timestep(B, env_.frame_shape[0], task, c.num_frame_per_block,
                                       c.timestep_shift, 0.02 * T, 0.98 * T, env_.rng,
                                       c.num_train_timestep)
        .to(env_.device);
  }

  // The micro-batch's clean latents (the last row of an ODE pair), or undefined.
  static torch::Tensor clean_of(const MicroBatch& mb) {
    const auto& lat = mb.batch->latents;
    return lat.defined() ? lat.select(1, lat.size(1) - 1) : torch::Tensor();
  }

  void generator_step(const StepInput& in, std::map<std::string, double>& m) {
    const auto& c = env_.cfg;
    auto real_scope = real_->sharded().gathered();
    auto gen_scope = gen_->sharded().gathered();
    m["generator_loss"] = accumulate(
        in,
        [&](const MicroBatch& mb, std::map<std::string, double>& mm) {
          const int64_t B = mb.cond.size(0);
          auto x0 = run_generator(env_, *gen_, mb.cond, clean_of(mb), c.backward_simulation, true);
          auto t = sample_t(B, c.real_task());
          auto noise = env_.randn(x0.sizes());
          losses::DmdOptions dopt;
          dopt.real_guidance_scale = c.real_guidance_scale;
          auto out = losses::dmd_loss(real_->wrap(), fake_->wrap(), x0, t, noise, mb.cond,
                                      env_.uncond(B), dopt);
          mm["dmd_gradient_norm"] = out.metrics.at("dmd_gradient_norm");
          return out.loss;
        },
        m);
    m["generator_grad_norm"] = update_generator(in.step);
  }

  void critic_step(const StepInput& in, std::map<std::string, double>& m) {
    const auto& c = env_.cfg;
    m["critic_loss"] = accumulate(
        in,
        [&](const MicroBatch& mb, std::map<std::string, double>&) {
          const int64_t B = mb.cond.size(0);
          torch::Tensor x0;
          {
            auto gen_scope = gen_->sharded().gathered();
            x0 = run_generator(env_, *gen_, mb.cond, clean_of(mb), c.backward_simulation, false);
          }
          auto t = sample_t(B, c.fake_task());
          auto noise = env_.randn(x0.sizes());
          return losses::critic_loss(fake_->wrap(), x0, t, noise, mb.cond,
                                     c.denoising_loss_type)
              .loss;
        },
        m);
    m["critic_grad_norm"] = update_critic(in.step);
  }

};

}  // namespace

void register_dmd_stage() {
  register_stage("dmd", [](StageEnv& env) { return std::make_unique<DmdStage>(env); });
}

}  // namespace causvid::trainer
