// trainer/fsdp.h: FSDP-style sharded data parallel over a torch::nn::Module.
// Ports the behaviour CausVid gets from torch.distributed.fsdp (causvid/util.py fsdp_wrap:
// ShardingStrategy FULL_SHARD / HYBRID_SHARD / _HYBRID_SHARD_ZERO2 / NO_SHARD, wrap policies
// transformer_auto_wrap_policy / size_based_auto_wrap_policy(min_num_params=5e7),
// MixedPrecision(param_dtype=bf16, reduce_dtype=fp32, buffer_dtype=fp32)).
//
// Design (LibTorch C++ has no module hooks):
//  - Each wrap unit's parameters are flattened (registration order) into one fp32 vector,
//    zero-padded to a multiple of the shard group size S; this rank owns the slice
//    [shard_rank * n, (shard_rank + 1) * n): the fp32 master shard that the optimizer updates.
//  - gather_params() all-gathers every unit and points the module's parameter tensors at views
//    of the gathered buffer (cast to bf16 when mixed_precision). Units with S == 1 and fp32
//    compute alias the master shard (no copy).
//  - Autograd accumulates into the module's .grad (also during the recomputation of
//    reentrant gradient checkpointing). reduce_grads() flattens them in fp32, divides by the
//    world size (data-parallel mean), reduce-scatters inside the shard group and all-reduces
//    the shard across the replica group, accumulating into the unit's fp32 grad shard.
//  - Strategies = (shard group, replica group, reshard at rest):
//      full          S = W,          R = 1,     params freed after backward (reshard())
//      hybrid_full   S = node ranks, R = nodes, params freed after backward
//      shard_grad_op / zero2: S = W, R = 1, params kept whole; hybrid_zero2: S = node, R = nodes
//      no_shard      S = 1,          R = W      (DDP: grads all-reduced)
// Deliberate difference vs torch FSDP: `full` gathers all units before the forward and keeps
// them until reduce_grads() (no per-block re-gather in backward), so the PEAK memory of a
// step holds the whole unsharded model; at rest (between steps, where optimizer state and
// grads live) memory is sharded 1/S. `causvid bench fsdp` and `causvid plan` report the
// at-rest bytes. A per-block pre-forward hook in WanModel would lower the peak; not done.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/dist.h"

namespace causvid::trainer {

struct FsdpOptions {
  std::string strategy = "full";  // full|hybrid_full|hybrid_zero2|shard_grad_op|zero2|no_shard
  std::string wrap_policy = "size";  // size|transformer
  int64_t min_num_params = 50000000;  // size policy (CausVid: 5e7)
  std::string transformer_module = "blocks";  // transformer policy: units "<this>.<i>"
  bool mixed_precision = false;  // bf16 compute params, fp32 master + fp32 reduction
  bool trainable = true;         // false: frozen (no grads, no optimizer state)
};

// The options CausVid's config gives one of its models: which = generator | real_score |
// fake_score | text_encoder (sharding_strategy, <which>_fsdp_wrap_strategy,
// <which>_fsdp_transformer_module (default "blocks"), mixed_precision; real_score and
// text_encoder are frozen).
FsdpOptions fsdp_options_from_config(const core::Config& c, const std::string& which);

// Validates a strategy / policy name (error names the key and the accepted values).
void check_fsdp_options(const FsdpOptions& o);

struct FlatUnit {
  std::string name;                      // module prefix ("" = root, "blocks.3")
  std::vector<std::string> param_names;  // full names in the module
  std::vector<torch::Tensor> params;     // the module's parameter tensors
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> offsets;  // into the flat vector
  int64_t numel = 0;             // unpadded
  int64_t shard_numel = 0;       // padded / S
  torch::Tensor shard;           // fp32 master [shard_numel]
  torch::Tensor grad;            // fp32 [shard_numel] (undefined until first reduce_grads)
  torch::Tensor full;            // gathered buffer while params are materialised
};

struct MemoryBytes {
  int64_t params = 0, grads = 0, optimizer = 0;
  int64_t total() const { return params + grads + optimizer; }
};

// Planned per-rank bytes of a module of `numel` parameters under a strategy with shard group
// size S (1 for no_shard), as ShardedModule lays it out: at_rest = between steps (fp32
// master shard, kept compute params, fp32 grad shard, AdamW m+v shards); `peak` adds what a
// step materialises (unsharded compute params for freed strategies + module grads in the
// compute dtype).
struct MemoryPlan {
  MemoryBytes at_rest;
  int64_t peak_extra = 0;
};
MemoryPlan plan_memory(int64_t numel, const std::string& strategy, int shard_size,
                       bool mixed_precision, bool trainable);

class ShardedModule {
 public:
  // Flattens and shards `module`'s parameters. All ranks must hold the same architecture;
  // world rank 0's values are broadcast (so ranks start identical).
  ShardedModule(std::shared_ptr<torch::nn::Module> module, std::shared_ptr<core::DistContext> dist,
                FsdpOptions opts);

  void gather_params();  // before forward; no-op while gathered
  void reshard();        // frees the unsharded params (no-op for strategies that keep them)
  void reduce_grads();   // after backward: module .grad -> fp32 grad shards; then reshard()
  void after_step();     // optimizer changed the shards: refresh kept params
  void zero_grad();

  std::vector<FlatUnit>& units() { return units_; }
  const FsdpOptions& options() const { return opts_; }
  const core::DistGroup& shard_group() const { return *shard_; }
  const core::DistGroup& replica_group() const { return *replica_; }
  core::DistContext& dist() { return *dist_; }
  torch::nn::Module& module() { return *module_; }
  bool keeps_params() const { return keep_params_; }
  // Where shards, grads and optimizer state live: the device of the module's parameters.
  torch::Device device() const { return device_; }

  // Full fp32 state dict (parameter names as the module's) on CPU; gathered collectively,
  // returned on every rank (callers export on rank 0).
  std::map<std::string, torch::Tensor> full_state_dict();
  // Loads full tensors (every rank passes the same values) into the master shards.
  void load_full_state_dict(const std::map<std::string, torch::Tensor>& sd);
  // Bytes this rank holds between steps (params = master shards + kept compute params).
  MemoryBytes memory_at_rest(int64_t optimizer_bytes) const;

 private:
  void build_units();
  std::shared_ptr<torch::nn::Module> module_;
  std::shared_ptr<core::DistContext> dist_;
  FsdpOptions opts_;
  core::DistGroup single_;
  const core::DistGroup* shard_ = nullptr;
  const core::DistGroup* replica_ = nullptr;
  bool keep_params_ = false;
  bool gathered_ = false;
  torch::ScalarType compute_dtype_ = torch::kFloat32;
  torch::Device device_ = torch::kCPU;
  std::vector<FlatUnit> units_;
};

}  // namespace causvid::trainer
