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
#include "trainer/stages/generator_inputs.h"

namespace causvid::trainer {
namespace {

class DmdStage : public GeneratorStage {
 public:
  explicit DmdStage(StageEnv& env) : GeneratorStage(env) {
    const auto& c = env.cfg;
    const std::string base = c.dit_file();
    real_ = std::make_unique<TrainModel>(
        c, TrainModelSpec{"real_score", c.real_model() == "causal_wan", base, env.seed + 1, false},
        env.dist);
    fake_ = std::make_unique<TrainModel>(
        c,
        TrainModelSpec{"fake_score", c.fake_model() == "causal_wan", base, env.seed + 2,
                       c.fake_score_trainable()},
        env.dist);
    if (fake_->trainable()) {
      AdamWOptions fo = adamw_from_config(c);  // the critic's lr and betas
      fo.lr = c.critic_lr();
      fo.beta1 = c.critic_beta1();
      fo.beta2 = c.critic_beta2();
      fake_->add_optimizer(fo);
    }
  }

  bool needs_latents() const override { return !env_.cfg.backward_simulation; }

  std::map<std::string, double> step(const StepInput& in) override {
    const auto& c = env_.cfg;
    std::map<std::string, double> m;
    const auto& lat = in.batch.latents;
    torch::Tensor clean;
    if (lat.defined()) clean = lat.select(1, lat.size(1) - 1);
    auto fake_scope = fake_->sharded().gathered();
    if (gen_->trainable() && in.step % c.dfake_gen_update_ratio == 0)
      generator_step(in, clean, m);
    // Critic: flow matching on the generator's (detached) samples; fake_score_grad
    // {model: false} keeps a fixed critic.
    if (fake_->trainable()) critic_step(in, clean, m);
    return m;
  }

  std::vector<ModelState> checkpoint_states() override {
    return {gen_->checkpoint_state("generator"), fake_->checkpoint_state("critic")};
  }

  std::vector<std::pair<std::string, TrainModel*>> models() override {
    return {{"generator", gen_.get()}, {"real_score", real_.get()}, {"fake_score", fake_.get()}};
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

  void generator_step(const StepInput& in, const torch::Tensor& clean,
                      std::map<std::string, double>& m) {
    const auto& c = env_.cfg;
    const int64_t B = in.cond.size(0);
    auto un = env_.uncond(B);
    auto real_scope = real_->sharded().gathered();
    auto gen_scope = gen_->sharded().gathered();
    auto x0 = run_generator(env_, *gen_, in.cond, clean, c.backward_simulation, true);
    auto t = sample_t(B, c.real_task());
    auto noise = env_.randn(x0.sizes());
    losses::DmdOptions dopt;
    dopt.real_guidance_scale = c.real_guidance_scale;
    auto out = losses::dmd_loss(real_->wrap(), fake_->wrap(), x0, t, noise, in.cond, un, dopt);
    out.loss.backward();
    m["generator_loss"] = out.loss.item<double>();
    m["generator_grad_norm"] = update_generator(in.step);
    for (const auto& kv : out.metrics)
      if (kv.first.find("gradient_norm") != std::string::npos) m["dmd_gradient_norm"] = kv.second;
    if (!m.count("dmd_gradient_norm") && out.tensors.count("dmdtrain_gradient_norm"))
      m["dmd_gradient_norm"] = out.tensors.at("dmdtrain_gradient_norm").item<double>();
  }

  void critic_step(const StepInput& in, const torch::Tensor& clean,
                   std::map<std::string, double>& m) {
    const auto& c = env_.cfg;
    const int64_t B = in.cond.size(0);
    torch::Tensor x0;
    {
      auto gen_scope = gen_->sharded().gathered();
      x0 = run_generator(env_, *gen_, in.cond, clean, c.backward_simulation, false);
    }
    auto t = sample_t(B, c.fake_task());
    auto noise = env_.randn(x0.sizes());
    auto out = losses::critic_loss(fake_->wrap(), x0, t, noise, in.cond, c.denoising_loss_type);
    out.loss.backward();
    m["critic_loss"] = out.loss.item<double>();
    m["critic_grad_norm"] = env_.updates.apply(*fake_, in.step);
  }

  std::unique_ptr<TrainModel> real_, fake_;
};

}  // namespace

void register_dmd_stage() {
  register_stage("dmd", [](StageEnv& env) { return std::make_unique<DmdStage>(env); });
}

}  // namespace causvid::trainer
