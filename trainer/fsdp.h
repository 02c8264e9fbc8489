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
//  - Gathering a unit all-gathers its shards and points the module's parameter tensors at
//    views of the gathered buffer (under mixed_precision the shard is cast to bf16 first and
//    the all-gather runs in bf16). Units with S == 1 and
//    fp32 compute alias the master shard (no copy). Freeing points them at empty tensors.
//  - Strategies = (shard group, replica group, reshard at rest):
//      full          S = W,          R = 1,     params freed (per unit, see below)
//      hybrid_full   S = node ranks, R = nodes, params freed (per unit)
//      shard_grad_op / zero2: S = W, R = 1, params kept whole; hybrid_zero2: S = node, R = nodes
//      no_shard      S = 1,          R = W      (DDP: grads all-reduced)
//  - Per-unit gathering (full / hybrid_full, as torch FSDP FULL_SHARD): when the module
//    implements models::BlockRunnerHost (WanModel), ShardedModule installs a block runner.
//    Units lying inside block i ("blocks.<i>" or below it) are "block units"; every other
//    unit (the root: embeddings, head) is a "step unit". Each block call runs as one custom
//    autograd function whose forward gathers the block's units, runs the block without a
//    graph and frees them; whose backward re-gathers them, recomputes the block with grad,
//    back-propagates (parameter grads into the module's .grad, input grads returned),
//    reduce-scatters the block's grads into the units' fp32 grad shards and frees the
//    unsharded params and grads. A block unit therefore holds unsharded memory only inside its
//    own forward or backward: a step's peak is the step units plus one block. Recomputing in
//    backward is activation checkpointing (what CausVid runs with FSDP); with per-unit
//    gathering it is always on for the blocks, whatever the model's gradient_checkpointing.
//    Without grad (frozen modules, no_grad inference) a block call just gathers, runs, frees.
//    A module called several times per step re-gathers on every call; each call's backward
//    reduce-scatters and the grad shards accumulate until zero_grad().
//  - gather_params() gathers the step units (all units when there is no block runner or
//    per_unit is false: the gather-all mode, whose peak holds the whole unsharded model).
//    Autograd accumulates the step units' grads into the module's .grad; reduce_grads()
//    flattens them in fp32, divides by the world size (data-parallel mean), reduce-scatters
//    inside the shard group and all-reduces the shard across the replica group, accumulating
//    into the unit's fp32 grad shard; then frees (reshard()). Block units' grads were already
//    reduced in backward.
//  - gather_stats() counts the unsharded compute bytes materialised (current, peak, number of
//    gathers) for `causvid bench fsdp` and the tests.
// Limits: a block recomputed in backward must be side-effect free (the KV-cache inference
// path runs without grad, so it is never recomputed). Difference vs torch FSDP: without
// activation checkpointing torch keeps a unit's activations and only re-gathers its params
// for backward; here a block unit always recomputes (about one extra block forward per
// step; per_unit = false restores gather-all without recomputation). Per-block gathering needs
// blocks to be wrap units: the transformer policy always; the size policy (5e7) only when a
// block reaches min_num_params (Wan 14B; a Wan 1.3B block has 4.6e7 parameters, so the block
// list becomes one unit and a step still gathers the whole model, as in CausVid's own run).
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/dist.h"
#include "models/common/block_runner.h"

namespace causvid::trainer {

struct FsdpOptions {
  std::string strategy = "full";  // full|hybrid_full|hybrid_zero2|shard_grad_op|zero2|no_shard
  std::string wrap_policy = "size";  // size|transformer
  int64_t min_num_params = 50000000;  // size policy (CausVid: 5e7)
  std::string transformer_module = "blocks";  // transformer policy: units "<this>.<i>"
  bool mixed_precision = false;  // bf16 compute params, fp32 master + fp32 reduction
  bool trainable = true;  // false: frozen (no grads, no optimizer state, shards stored in the
                          // compute dtype: bf16 under mixed precision)
  // full / hybrid_full on a BlockRunnerHost model: gather each block's units around its own
  // forward and backward (torch FULL_SHARD). false: gather every unit in gather_params() and
  // keep them until reduce_grads() (gather-all; faster without gradient checkpointing, peak
  // memory holds the whole unsharded model).
  bool per_unit = true;
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
  int64_t block = -1;            // block index for block units (per-unit gathering), else -1
};

// Unsharded compute-parameter bytes materialised by gathers (aliased S == 1 fp32 units count
// zero: they hold no extra memory).
struct GatherStats {
  int64_t current_bytes = 0;
  int64_t peak_bytes = 0;
  int64_t gathers = 0;           // unit gathers (forward, backward and step gathers)
  int64_t backward_reduces = 0;  // unit gradient reductions done inside backward
};

struct MemoryBytes {
  int64_t params = 0, grads = 0, optimizer = 0;
  int64_t total() const { return params + grads + optimizer; }
};

// Planned per-rank bytes of a module of `numel` parameters under a strategy with shard group
// size S (1 for no_shard), as ShardedModule lays it out: at_rest = between steps (fp32
// master shard, kept compute params, fp32 grad shard, AdamW m+v shards); `peak` adds what a
// step materialises: for freed strategies the unsharded compute params and compute-dtype
// module grads of `gathered_numel` parameters at once (per-block gathering: the root unit
// plus one block; -1 = the whole model, as under gather-all or when no block is a unit), for
// kept strategies the module grads of the whole model.
struct MemoryPlan {
  MemoryBytes at_rest;
  int64_t peak_extra = 0;
};
MemoryPlan plan_memory(int64_t numel, const std::string& strategy, int shard_size,
                       bool mixed_precision, bool trainable, int64_t gathered_numel = -1);

class ShardedModule {
 public:
  // Flattens and shards `module`'s parameters. All ranks must hold the same architecture;
  // world rank 0's values are broadcast (so ranks start identical).
  ShardedModule(std::shared_ptr<torch::nn::Module> module, std::shared_ptr<core::DistContext> dist,
                FsdpOptions opts);
  ~ShardedModule();                              // removes the block runner from the module
  ShardedModule(const ShardedModule&) = delete;  // the installed runner points at this object
  ShardedModule& operator=(const ShardedModule&) = delete;

  // The step units gathered for a scope (see above), resharded when it ends:
  //   { auto g = model.gathered(); ...forward... }
  // reduce_grads() inside the scope reshards early; the scope's end is then a no-op.
  class [[nodiscard]] Gathered {
   public:
    explicit Gathered(ShardedModule& m) : m_(&m) { m.gather_params(); }
    ~Gathered() {
      if (m_) m_->reshard();
    }
    Gathered(Gathered&& o) noexcept : m_(o.m_) { o.m_ = nullptr; }
    Gathered(const Gathered&) = delete;
    Gathered& operator=(const Gathered&) = delete;
    Gathered& operator=(Gathered&&) = delete;

   private:
    ShardedModule* m_;
  };
  Gathered gathered() { return Gathered(*this); }

  void gather_params();  // before forward: the step units (see above); no-op while gathered
  void reshard();        // frees the unsharded params (no-op for strategies that keep them)
  // After backward: module .grad of the step units -> fp32 grad shards; then reshard().
  void reduce_grads();
  void after_step();     // optimizer changed the shards: refresh kept params
  void zero_grad();

  // The units' layout (names, shapes, offsets, block index), read-only: the master shards
  // change only through the optimizer (a friend), load_shard() and load_full_state_dict().
  const std::vector<FlatUnit>& units() const { return units_; }
  // This rank's fp32 master shard of unit i (read-only view for EMA and checkpoints).
  const torch::Tensor& shard(size_t i) const { return units_[i].shard; }
  // Overwrites this rank's master shard of unit i (checkpoint resume); call finish_load()
  // after the last unit.
  void load_shard(size_t i, const torch::Tensor& values);
  void finish_load();  // drops grads, refreshes materialised params from the new shards
  // Names (up to `max`) of the parameters whose gradient on this rank's shard is not finite.
  std::vector<std::string> nonfinite_grad_params(size_t max = 5) const;
  const FsdpOptions& options() const { return opts_; }
  const core::DistGroup& shard_group() const { return *shard_; }
  const core::DistGroup& replica_group() const { return *replica_; }
  core::DistContext& dist() { return *dist_; }
  torch::nn::Module& module() { return *module_; }
  bool keeps_params() const { return keep_params_; }
  // True when block units are gathered per block call (a block runner is installed).
  bool per_unit() const { return host_ != nullptr; }
  const GatherStats& gather_stats() const { return stats_; }
  void reset_gather_stats();  // peak := current, counters := 0
  // Bytes a gather of unit i materialises (0 for aliased units).
  int64_t unit_gather_bytes(size_t i) const;

  // The block runner's steps, exposed for models that call blocks themselves: gather / free
  // the units of block b, and reduce their module .grad into the grad shards (collective).
  void gather_block(int64_t b);
  void free_block(int64_t b);
  void reduce_block(int64_t b);
  // Where shards, grads and optimizer state live: the device of the module's parameters.
  torch::Device device() const { return device_; }

  // Full fp32 state dict (parameter names as the module's) on CPU, gathered collectively one
  // unit at a time. rank0_only: only world rank 0 keeps the CPU copy (the others hold one
  // gathered unit at a time and return an empty map), as torch FSDP's
  // FullStateDictConfig(rank0_only=True); otherwise every rank gets it.
  // `shards`: gather these per-unit values (laid out like the master shards, e.g. an EMA)
  // instead of the master shards.
  std::map<std::string, torch::Tensor> full_state_dict(
      bool rank0_only = false, const std::vector<torch::Tensor>* shards = nullptr);
  // Loads full tensors (every rank passes the same values) into the master shards.
  void load_full_state_dict(const std::map<std::string, torch::Tensor>& sd);
  // Bytes this rank holds between steps (params = master shards + kept compute params).
  MemoryBytes memory_at_rest(int64_t optimizer_bytes) const;

 private:
  friend class ShardedAdamW;  // updates the master shards from the grad shards
  void build_units();
  void install_runner();
  std::vector<torch::Tensor> run_block(int64_t b, const models::BlockFn& fn,
                                       const std::vector<torch::Tensor>& inputs);
  void gather_unit(FlatUnit& u, bool force = false);
  void free_unit(FlatUnit& u);
  void reduce_unit(FlatUnit& u);
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
  std::vector<std::vector<size_t>> block_units_;  // block index -> unit indices
  models::BlockRunnerHost* host_ = nullptr;       // set while per-unit gathering is on
  torch::Tensor dummy_;  // requires grad: block outputs join the graph even without inputs
  GatherStats stats_;
};

}  // namespace causvid::trainer
