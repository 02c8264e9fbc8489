// trainer/ema.h: an exponential moving average of a ShardedModule's weights, kept as fp32
// shards laid out like the module's master shards (each rank holds 1/S of it). Ports
// Self-Forcing's generator EMA (ema_weight, ema_start_step): before ema_start_step the
// average is a copy of the weights, after it ema = w * ema + (1 - w) * weights.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "trainer/fsdp.h"

namespace causvid::trainer {

class ShardedEma {
 public:
  ShardedEma(ShardedModule& module, double weight, int64_t start_step);

  // After an update of the module's weights; `step` = updates done before this one.
  void update(int64_t step);
  const std::vector<torch::Tensor>& shards() const { return shards_; }
  void load_shard(size_t i, const torch::Tensor& values);  // checkpoint resume
  void reset_shard(size_t i);                              // := the module's weights
  // Collective: the average as a full state dict (module's parameter names) on rank 0.
  std::map<std::string, torch::Tensor> full_state_dict_rank0() const;

 private:
  ShardedModule& module_;
  double weight_;
  int64_t start_step_;
  std::vector<torch::Tensor> shards_;
};

}  // namespace causvid::trainer
