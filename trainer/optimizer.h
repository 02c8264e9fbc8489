// trainer/optimizer.h: AdamW over the fp32 master shards of ShardedModules, with global
// gradient-norm clipping across shards (torch.nn.utils.clip_grad_norm_ / FSDP's
// clip_grad_norm_, CausVid's max_grad_norm = 10).
// Same math as torch.optim.AdamW (amsgrad = False, maximize = False, foreach or not):
//   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// State (m, v, step) lives per shard: optimizer memory is 1/S of the unsharded optimizer.
// Padding elements of the last shard have zero grads and stay zero (wd of 0 is 0).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "trainer/fsdp.h"

namespace causvid::trainer {

struct AdamWOptions {
  double lr = 2.0e-6;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

class ShardedAdamW {
 public:
  ShardedAdamW(std::vector<ShardedModule*> modules, AdamWOptions opts);

  // Global L2 norm of all grad shards (all-reduced in the shard groups); scales grads by
  // max_norm / (norm + 1e-6) when that is < 1. Returns the norm before clipping.
  double clip_grad_norm(double max_norm);
  double grad_norm();
  // One update of every shard (units without grads this step are skipped, as torch does
  // for params whose .grad is None); then modules refresh kept params.
  void step();
  void zero_grad();

  AdamWOptions& options() { return opts_; }
  // The schedule's factor on lr (trainer/lr_schedule.h) for the next step(); 1 by default.
  void set_lr_scale(double s) { lr_scale_ = s; }
  double lr() const { return opts_.lr * lr_scale_; }
  int64_t step_count() const { return step_; }
  int64_t state_bytes() const;
  // Per (module, unit): exp_avg and exp_avg_sq shards (undefined before the first step).
  struct UnitState {
    torch::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  std::vector<std::vector<UnitState>>& state() { return state_; }
  void set_step_count(int64_t s) { step_ = s; }
  const std::vector<ShardedModule*>& modules() const { return modules_; }

 private:
  std::vector<ShardedModule*> modules_;
  AdamWOptions opts_;
  std::vector<std::vector<UnitState>> state_;
  int64_t step_ = 0;
  double lr_scale_ = 1.0;
};

}  // namespace causvid::trainer
