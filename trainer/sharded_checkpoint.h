// trainer/sharded_checkpoint.h: sharded save/load of ShardedModules + ShardedAdamW for resume,
// and the full (rank-0) model export. Replaces CausVid's FSDP FULL_STATE_DICT
// (fsdp_state_dict in causvid/util.py, rank 0 torch.save of the generator) with a resumable
// layout, as torch.distributed.checkpoint does:
//
//   DIR/step-N/                      (written as DIR/.step-N.tmp, renamed when complete)
//     <module>.shard-K-of-S.safetensors   fp32 master shard K of S ("u<i>" tensors) plus
//                                         AdamW exp_avg / exp_avg_sq ("u<i>.exp_avg" ..)
//                                         and the EMA shard ("u<i>.ema") when kept;
//                                         written by the replica-0 rank of shard index K
//     meta.json                           written LAST by rank 0: the commit marker (no
//                                         meta.json = not a checkpoint)
// Loading re-shards: a unit's full flat vector is the concatenation of its S shards cut to
// its numel, and each rank takes its slice for the current layout (any world size, any
// strategy). A rank reads only the byte ranges of the old shards that overlap its slice
// (memory-mapped; files it does not need are never opened), so resume memory and I/O per
// rank are those of its own shard. DIR must be on a filesystem all ranks see.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "trainer/fsdp.h"
#include "trainer/optimizer.h"

namespace causvid::trainer {

struct NamedModule {
  std::string name;  // "generator", "fake_score", ...
  ShardedModule* module;
  // Per-unit fp32 EMA shards laid out like the master shards (saved as "u<i>.ema"), or null.
  std::vector<torch::Tensor>* ema = nullptr;
};

// Collective: every rank calls. Returns the committed directory DIR/step-N.
std::string save_sharded_checkpoint(const std::string& dir, int64_t step,
                                    const std::vector<NamedModule>& modules,
                                    ShardedAdamW* optimizer,
                                    const std::map<std::string, std::string>& extra = {});
// Loads into modules (and optimizer state, if given and saved). Returns the step. Throws
// naming the file when meta.json is missing (an uncommitted save) or shapes disagree.
int64_t load_sharded_checkpoint(const std::string& step_dir,
                                const std::vector<NamedModule>& modules,
                                ShardedAdamW* optimizer);
// The newest committed DIR/step-N, or "" if none.
std::string latest_checkpoint(const std::string& dir);
// Collective: full fp32 state dict gathered; rank 0 writes it as safetensors (atomic).
void export_full_state_dict(const std::string& path, ShardedModule& module);

}  // namespace causvid::trainer
