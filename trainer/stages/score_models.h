// trainer/stages/score_models.h: what the score-distillation stages share (CausVid's DMD,
// Self-Forcing's DMD): the generator plus a frozen real score (the teacher, possibly of
// another size: real_score_config) and a critic (fake score) with its own AdamW
// (lr_critic, beta1_critic, beta2_critic). Checkpoints hold generator and critic.
#pragma once

#include <memory>

#include "models/wan/presets.h"
#include "trainer/stage.h"

namespace causvid::trainer {

class ScoreDistillationStage : public GeneratorStage {
 public:
  explicit ScoreDistillationStage(StageEnv& env) : GeneratorStage(env) {
    const auto& c = env.cfg;
    real_ = std::make_unique<TrainModel>(
        c,
        TrainModelSpec{"real_score", c.real_model() == "causal_wan", c.real_dit_file(),
                       env.seed + 1, false, models::real_score_config(c)},
        env.dist);
    fake_ = std::make_unique<TrainModel>(
        c,
        TrainModelSpec{"fake_score", c.fake_model() == "causal_wan", c.dit_file(), env.seed + 2,
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

  std::vector<ModelState> checkpoint_states() override {
    return {gen_->checkpoint_state("generator"), fake_->checkpoint_state("critic")};
  }

  std::vector<std::pair<std::string, TrainModel*>> models() override {
    return {{"generator", gen_.get()}, {"real_score", real_.get()}, {"fake_score", fake_.get()}};
  }

 protected:
  // The critic's update after its backward (clipped at max_grad_norm_critic).
  double update_critic(int64_t step) {
    return env_.updates.apply(*fake_, step, env_.cfg.critic_grad_clip());
  }

  std::unique_ptr<TrainModel> real_, fake_;
};

}  // namespace causvid::trainer
