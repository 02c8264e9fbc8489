// models/common/block_runner.h: a per-block call hook for models with a list of repeated
// blocks (the Wan DiT's `blocks`). LibTorch C++ has no module forward hooks, so a model that
// implements BlockRunnerHost lets an owner (trainer/fsdp.h's ShardedModule under full
// sharding) wrap every block call: the runner receives the block index, a function computing
// the block's outputs from its tensor inputs (every use of the block's parameters happens
// inside it) and the inputs, and returns the outputs. A runner may call `fn` more than once
// (recomputation in backward), so `fn` must be deterministic and free of side effects other
// than on its outputs. No counterpart in the Python reference (torch FSDP uses module hooks).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace causvid::models {

using BlockFn = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;
using BlockRunner = std::function<std::vector<torch::Tensor>(
    int64_t block, const BlockFn& fn, const std::vector<torch::Tensor>& inputs)>;

class BlockRunnerHost {
 public:
  virtual ~BlockRunnerHost() = default;
  // An empty runner restores the plain call.
  virtual void set_block_runner(BlockRunner runner) = 0;
  // Registered name of the block list ("blocks"): block i's parameters are "<name>.<i>.*".
  virtual std::string block_list_name() const = 0;
};

}  // namespace causvid::models
