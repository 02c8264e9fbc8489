// trainer/ema.cpp: see ema.h.
#include "trainer/ema.h"

namespace causvid::trainer {

ShardedEma::ShardedEma(ShardedModule& module, double weight, int64_t start_step)
    : module_(module), weight_(weight), start_step_(start_step) {
  TORCH_CHECK(weight > 0 && weight < 1, "ema_weight: got ", weight, ", want (0, 1)");
  for (size_t i = 0; i < module.units().size(); ++i) shards_.push_back(module.shard(i).clone());
}

void ShardedEma::update(int64_t step) {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (step < start_step_) {
      shards_[i].copy_(module_.shard(i));
    } else {
      shards_[i].mul_(weight_).add_(module_.shard(i), 1.0 - weight_);
    }
  }
}

void ShardedEma::load_shard(size_t i, const torch::Tensor& values) {
  torch::NoGradGuard ng;
  shards_.at(i).copy_(values.reshape({-1}));
}

void ShardedEma::reset_shard(size_t i) {
  torch::NoGradGuard ng;
  shards_.at(i).copy_(module_.shard(i));
}

std::map<std::string, torch::Tensor> ShardedEma::full_state_dict_rank0() const {
  return module_.full_state_dict(/*rank0_only=*/true, &shards_);
}

}  // namespace causvid::trainer
