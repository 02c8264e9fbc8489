// models/common/checkpoint.h: gradient checkpointing (torch.utils.checkpoint, reentrant
// variant). The forward runs without saving activations; backward re-runs `fn` with grad
// enabled on detached copies of the inputs and back-propagates through the recomputed graph.
// Gradients of parameters used inside `fn` are accumulated into their .grad directly (as
// PyTorch's reentrant checkpoint does); gradients of the tensor inputs are returned.
// RNG: fn must be deterministic (the Wan blocks are: no dropout).
#pragma once

#include <torch/torch.h>

#include <functional>

namespace causvid::models {

using CheckpointFn = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;

// Runs fn(inputs). When grad mode is on and something requires grad, activations inside fn
// are not kept; they are recomputed in backward.
torch::Tensor checkpoint(const CheckpointFn& fn, const std::vector<torch::Tensor>& inputs);

}  // namespace causvid::models
