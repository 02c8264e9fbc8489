// trainer/train_model.h: one model of a training stage (generator, real score, fake score):
// the Wan DiT, its diffusion wrapper (flow-matching scheduler, causal or bidirectional), its
// sharded parameters, and what it owns when trained: an AdamW over its shards and, for the
// generator, an EMA. UpdateRule is the update all stages share: reduce the gradients, clip
// at grad_clip (CausVid's max_grad_norm), step, or skip the update when the global gradient
// norm is not finite (max_nonfinite_skips in a row stop the run); lr follows the config's
// schedule (trainer/lr_schedule.h).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>

#include "core/config.h"
#include "core/dist.h"
#include "models/wan/wan_model.h"
#include "models/wan/wan_wrapper.h"
#include "trainer/checkpoint.h"
#include "trainer/ema.h"
#include "trainer/fsdp.h"
#include "trainer/lr_schedule.h"
#include "trainer/optimizer.h"

namespace causvid::trainer {

struct TrainModelSpec {
  std::string name;    // "generator" | "real_score" | "fake_score": selects the FSDP keys
  bool causal = false;
  std::string source;  // "random" (Wan's init_weights with `seed`) or a weight file / dir
  uint64_t seed = 0;
  bool trainable = true;  // false: frozen (no grads, no optimizer)
  // Sizes other than the run's (the real score of Self-Forcing: real_score_config).
  std::optional<models::WanConfig> sizes = std::nullopt;
  // The wrapper's flow-matching grid shift; unset = the config's scheduler_shift.
  std::optional<double> scheduler_shift = std::nullopt;
  // LoRA training (trainable models only): the base weights frozen (sharded as a frozen
  // model, in the compute dtype under mixed precision), adapters trained on the fly. Unset =
  // the config's lora_rank for the generator (and for the critic with lora_critic).
  bool use_config_lora = true;
};

// The adapter settings of the config (lora_rank, lora_alpha, ... / LongLive's adapter block).
models::LoraSpec lora_spec_from_config(const core::Config& c);

// The generator's AdamW from the config (lr, beta1, beta2, weight_decay).
AdamWOptions adamw_from_config(const core::Config& c);

class TrainModel {
 public:
  TrainModel(const core::Config& c, const TrainModelSpec& spec,
             std::shared_ptr<core::DistContext> dist);

  const std::string& name() const { return name_; }
  bool trainable() const { return trainable_; }
  models::WanDiffusionWrapper& wrap() { return *wrap_; }
  // The model's weights (gather them around its forward calls). With LoRA: the frozen base.
  ShardedModule& sharded() { return *sharded_; }
  // What the optimizer updates: the LoRA adapters (replicated, no_shard), else sharded().
  ShardedModule& trained() { return lora_sharded_ ? *lora_sharded_ : *sharded_; }
  // The adapters being trained, or null.
  const models::LoraAdapters& lora() const { return lora_; }
  ShardedAdamW* optimizer() { return opt_.get(); }
  ShardedEma* ema() { return ema_.get(); }

  void add_optimizer(const AdamWOptions& o);            // trainable models only
  void add_ema(double weight, int64_t start_step);      // trainable models only
  // Its part of a checkpoint, saved under `file_name` ("generator", "critic"); with LoRA the
  // adapters, under "<file_name>_lora".
  ModelState checkpoint_state(const std::string& file_name);

 private:
  std::string name_;
  bool trainable_ = true;
  models::WanModel model_{nullptr};
  std::unique_ptr<models::WanDiffusionWrapper> wrap_;
  std::unique_ptr<ShardedModule> sharded_;
  models::LoraAdapters lora_{nullptr};
  std::unique_ptr<ShardedModule> lora_sharded_;
  std::unique_ptr<ShardedAdamW> opt_;
  std::unique_ptr<ShardedEma> ema_;
};

class UpdateRule {
 public:
  explicit UpdateRule(const core::Config& c)
      : clip_(c.grad_clip), max_skips_(c.max_nonfinite_skips), schedule_(LrSchedule::from_config(c)) {}
  // After backward: reduce, clip, step the model's optimizer. Returns the gradient norm
  // before clipping. `step` = updates done before this one (for the messages).
  double apply(TrainModel& m, int64_t step);
  // The same with another clip norm (Self-Forcing's max_grad_norm_generator / _critic).
  double apply(TrainModel& m, int64_t step, double clip);
  int64_t skipped() const { return skipped_; }
  const LrSchedule& schedule() const { return schedule_; }
  void set_last_checkpoint(std::string dir) { last_checkpoint_ = std::move(dir); }

 private:
  double clip_;
  int max_skips_;
  LrSchedule schedule_;
  int64_t skipped_ = 0;
  int consecutive_ = 0;
  std::string last_checkpoint_;
};

}  // namespace causvid::trainer
