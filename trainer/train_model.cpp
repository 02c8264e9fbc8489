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

models::LoraSpec lora_spec_from_config(const core::Config& c) {
  const auto l = c.lora();
  models::LoraSpec s;
  s.rank = l.rank;
  s.alpha = l.alpha;
  s.dropout = l.dropout;
  s.targets = l.targets;
  return s;
}

TrainModel::TrainModel(const core::Config& c, const TrainModelSpec& spec,
                       std::shared_ptr<core::DistContext> dist)
    : name_(spec.name), trainable_(spec.trainable) {
  const auto sizes = spec.sizes ? *spec.sizes : models::wan_config(c);
  model_ = models::WanModel(sizes);
  if (spec.source == "random") {
    model_->init_weights(spec.seed);
  } else {
    models::load_wan_weights(model_, spec.source, "generator");
  }
  model_->to(dist->device());
  const bool use_lora = trainable_ && spec.use_config_lora && c.lora().rank > 0 &&
                        (name_ == "generator" || (name_ == "fake_score" && c.lora().critic));
  if (trainable_ && c.gradient_checkpointing) model_->set_gradient_checkpointing(true);
  for (auto& p : model_->parameters()) p.set_requires_grad(trainable_ && !use_lora);
  wrap_ = std::make_unique<models::WanDiffusionWrapper>(
      model_, spec.causal, c.num_frame_per_block, spec.scheduler_shift.value_or(c.scheduler_shift));
  auto fo = fsdp_options_from_config(c, name_);
  fo.trainable = trainable_ && !use_lora;
  sharded_ = std::make_unique<ShardedModule>(model_.ptr(), dist, fo);
  if (!use_lora) return;
  try {
    lora_ = models::LoraAdapters(sizes, lora_spec_from_config(c), spec.seed + 7919);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, c.source, ": key 'lora_target_modules' / 'lora_rank': ",
                e.what_without_backtrace());
  }
  // Dropout draws a fresh mask when a block is recomputed in backward (checkpointing, the
  // per-block FSDP runner): the gradient would belong to another function than the loss.
  TORCH_CHECK(lora_->spec().dropout == 0 || (!c.gradient_checkpointing && !sharded_->per_unit()),
              c.source, ": key 'lora_dropout': ", lora_->spec().dropout, " with ",
              c.gradient_checkpointing ? "gradient_checkpointing" : "per-block FSDP gathering",
              ": the recomputed blocks would draw another dropout mask than the forward; want "
              "lora_dropout 0 there");
  lora_->to(dist->device());
  model_->set_lora(lora_);
  FsdpOptions lo;  // replicated adapters: all-reduced gradients (DDP)
  lo.strategy = "no_shard";
  lo.mixed_precision = c.mixed_precision;
  lo.trainable = true;
  lora_sharded_ = std::make_unique<ShardedModule>(lora_.ptr(), dist, lo);
  int64_t n = 0;
  for (const auto& p : lora_->parameters()) n += p.numel();
  LOG_INFO("%s: LoRA rank %d alpha %g on %d linears (%lld trainable parameters, %.3f%% of %lld); "
           "base frozen", name_, lora_->spec().rank, lora_->spec().alpha,
           static_cast<int64_t>(lora_->parameters().size() / 2), static_cast<long long>(n),
           100.0 * n / sizes.num_params(), static_cast<long long>(sizes.num_params()));
}

void TrainModel::add_optimizer(const AdamWOptions& o) {
  TORCH_CHECK(trainable_, name_, ": a frozen model has no optimizer");
  opt_ = std::make_unique<ShardedAdamW>(std::vector<ShardedModule*>{&trained()}, o);
}

void TrainModel::add_ema(double weight, int64_t start_step) {
  TORCH_CHECK(trainable_, name_, ": a frozen model has no EMA");
  ema_ = std::make_unique<ShardedEma>(trained(), weight, start_step);
}

ModelState TrainModel::checkpoint_state(const std::string& file_name) {
  return {lora_ ? file_name + "_lora" : file_name, &trained(), opt_.get(), ema_.get()};
}

double UpdateRule::apply(TrainModel& m, int64_t step) { return apply(m, step, clip_); }

double UpdateRule::apply(TrainModel& m, int64_t step, double clip) {
  TORCH_CHECK(m.optimizer(), m.name(), ": update of a model without an optimizer");
  ShardedModule& mod = m.trained();
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
  opt.set_lr_scale(schedule_.factor(step));
  opt.step();
  opt.zero_grad();
  mod.zero_grad();
  return norm;
}

}  // namespace causvid::trainer
