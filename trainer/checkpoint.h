// trainer/checkpoint.h: the one checkpoint scheme of `causvid train` (every stage, every
// strategy), replacing CausVid's rank-0 torch.save of FSDP FULL_STATE_DICTs with a resumable
// sharded layout, as torch.distributed.checkpoint does:
//
//   <root>/checkpoint_model_<step, 6 digits>/   (written as .checkpoint_model_<step>.tmp and
//                                                 renamed once, when complete)
//     <model>.shard-K-of-S.safetensors   fp32 master shard K of S of each model ("u<i>"),
//                                        its AdamW moments ("u<i>.exp_avg", "u<i>.exp_avg_sq")
//                                        and EMA ("u<i>.ema") when it has them; written by
//                                        the replica-0 rank of shard index K
//     rng/rank<r>.bin                    each rank's random generator state
//     (files the caller adds on rank 0: model.pt, config.yaml)
//     trainer_state.json                 written LAST by rank 0: the step, each model's shard
//                                        layout and the caller's state (data position, seed,
//                                        stage). A directory without it is not a checkpoint.
//
// Loading re-shards: a unit's full flat vector is the concatenation of its S shards cut to
// its numel, and each rank takes its slice for the current layout (any world size, any
// strategy). A rank reads only the byte ranges of the saved shards that overlap its slice
// (memory-mapped; files it does not need are never opened), so resume memory and I/O per rank
// are those of its own shard. <root> must be on a filesystem every rank sees.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "trainer/ema.h"
#include "trainer/fsdp.h"
#include "trainer/optimizer.h"

namespace causvid::trainer {

// One model's part of a checkpoint.
struct ModelState {
  std::string name;                   // file prefix: "generator", "critic", ...
  ShardedModule* module = nullptr;
  ShardedAdamW* optimizer = nullptr;  // saved / restored when given (frozen models: none)
  ShardedEma* ema = nullptr;          // saved / restored when given
};

struct CheckpointContents {
  std::vector<ModelState> models;
  nlohmann::json state = nlohmann::json::object();  // the caller's keys of trainer_state.json
  std::string rng_state;  // this rank's random generator state (empty: none)
  // Extra files rank 0 writes into the temporary directory before the commit.
  std::function<void(const std::string& dir)> write_rank0;
};

// "checkpoint_model_000123".
std::string checkpoint_name(int64_t step);

// Collective: every rank calls with its own shards and rng state. Returns the committed
// directory. keep_latest > 0 then removes all but the newest keep_latest checkpoints (each
// first renamed out of the checkpoint set, so a kill never leaves a half-deleted one).
std::string save_checkpoint(const std::string& root, int64_t step,
                            const CheckpointContents& contents, int keep_latest = 0);

// The newest complete checkpoint directory under root, or "" if none.
std::string latest_checkpoint(const std::string& root);

// "" when every file trainer_state.json lists under "files" exists with its size and CRC-32C
// (checkpoints written before the list: trainer_state.json alone is checked); else what is
// wrong, naming the file. Reads every byte of the checkpoint.
std::string verify_checkpoint(const std::string& dir);
// The newest checkpoint under root that is complete and verifies; a damaged one is skipped
// with a warning naming the problem. "" if none.
std::string latest_verified_checkpoint(const std::string& root);
// Collective: where a run resumes from. resume "auto" = latest_verified_checkpoint(root), a
// directory = that one (an error if it does not verify), "" = nowhere (""). Rank 0 reads and
// checksums; every rank gets its answer.
std::string resolve_resume(const std::string& resume, const std::string& root,
                           core::DistContext& dist);

// trainer_state.json of a checkpoint; throws naming the directory when it is not a complete
// checkpoint.
nlohmann::json read_checkpoint_state(const std::string& dir);

// Collective: loads every model's shards (and optimizer / EMA state when given) into the
// current layout; `state` = read_checkpoint_state(dir). Throws naming the file when a model,
// a unit or a tensor is missing or does not match.
void load_checkpoint(const std::string& dir, const nlohmann::json& state,
                     const std::vector<ModelState>& models);

// This rank's saved random generator state, or "" when the checkpoint has none for it.
std::string read_rng_state(const std::string& dir, int rank);

// Model export (causvid export): trainer/model_export.h.

}  // namespace causvid::trainer
