// trainer/activation_plan.h: an estimate of the activation memory a training step keeps
// for its backward, per rank and micro-batch (what `causvid plan` adds to the parameter,
// gradient and optimizer bytes of trainer/fsdp.h). Per DiT layer and token a block saves
// about 16 D + 2 ffn_dim values (norms, q/k/v and their RoPE, attention and projection
// outputs, cross-attention, the FFN's hidden layer twice); with gradient checkpointing only
// the block input (D) plus one block's full set during its recomputation. The self-forcing
// rollout's exit calls (the only calls with grad) also keep the cached keys and values they
// attended to: copies without checkpointing, views of a plain cache with it.
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"

namespace causvid::trainer {

struct ActivationPlan {
  int64_t generator_step = 0;  // bytes held at the generator's backward
  int64_t critic_step = 0;     // bytes held at the critic's backward (score distillation)
  std::string detail;          // how they were counted, for the plan's footnote
};

ActivationPlan plan_activations(const core::Config& c);

}  // namespace causvid::trainer
