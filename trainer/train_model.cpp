// trainer/train_model.cpp: see train_model.h.
#include "trainer/train_model.h"

#include <cmath>

#include "core/log.h"
#include "models/wan/presets.h"
#include "models/wan/wan_loader.h"

namespace causvid::trainer {

AdamWOptions adamw_from_config(const core::Config& c) {
  AdamWOptions o;
  o.lr = c.lr;
  o.beta1 = c.beta1;
  o.beta2 = c.beta2;
  o.weight_decay = c.weight_decay;
  return o;
}

TrainModel::TrainModel(const core::Config& c, const TrainModelSpec& spec,
                       std::shared_ptr<core::DistContext> dist)
    : name_(spec.name), trainable_(spec.trainable) {
  model_ = models::WanModel(spec.sizes ? *spec.sizes : models::wan_config(c));
  if (spec.source == "random") {
    model_->init_weights(spec.seed);
  } else {
    models::load_wan_weights(model_, spec.source, "generator");
  }
  model_->to(dist->device());
  if (trainable_ && c.gradient_checkpointing) model_->set_gradient_checkpointing(true);
  for (auto& p : model_->parameters()) p.set_requires_grad(trainable_);
  wrap_ = std::make_unique<models::WanDiffusionWrapper>(
      model_, spec.causal, c.num_frame_per_block, spec.scheduler_shift.value_or(c.scheduler_shift));
  auto fo = fsdp_options_from_config(c, name_);
  fo.trainable = trainable_;
  sharded_ = std::make_unique<ShardedModule>(model_.ptr(), dist, fo);
}

void TrainModel::add_optimizer(const AdamWOptions& o) {
  TORCH_CHECK(trainable_, name_, ": a frozen model has no optimizer");
  opt_ = std::make_unique<ShardedAdamW>(std::vector<ShardedModule*>{sharded_.get()}, o);
}

void TrainModel::add_ema(double weight, int64_t start_step) {
  TORCH_CHECK(trainable_, name_, ": a frozen model has no EMA");
  ema_ = std::make_unique<ShardedEma>(*sharded_, weight, start_step);
}

ModelState TrainModel::checkpoint_state(const std::string& file_name) {
  return {file_name, sharded_.get(), opt_.get(), ema_.get()};
}

double UpdateRule::apply(TrainModel& m, int64_t step) { return apply(m, step, clip_); }

double UpdateRule::apply(TrainModel& m, int64_t step, double clip) {
  TORCH_CHECK(m.optimizer(), m.name(), ": update of a model without an optimizer");
  ShardedModule& mod = m.sharded();
  ShardedAdamW& opt = *m.optimizer();
  mod.reduce_grads();
  const double norm = opt.clip_grad_norm(clip);
  if (!std::isfinite(norm)) {
    ++skipped_;
    ++consecutive_;
    std::string names;
    for (const auto& n : mod.nonfinite_grad_params()) names += (names.empty() ? "" : ", ") + n;
    LOG_WARN("step %d: %s gradient norm is %g: update skipped (%d in a row, %d in all); "
             "non-finite gradients in %s",
             step + 1, m.name(), norm, consecutive_, skipped_,
             names.empty() ? std::string("(none on this rank's shard)") : names);
    opt.zero_grad();
    mod.zero_grad();
    TORCH_CHECK(consecutive_ < max_skips_, "step ", step + 1, ": ", consecutive_,
                " consecutive updates skipped for non-finite gradients (max_nonfinite_skips ",
                max_skips_, "): the run diverged; lower lr or check the data. The last "
                "checkpoint (", last_checkpoint_.empty() ? std::string("none yet") : last_checkpoint_,
                ") is intact");
    return norm;
  }
  consecutive_ = 0;
  opt.step();
  opt.zero_grad();
  mod.zero_grad();
  return norm;
}

}  // namespace causvid::trainer
