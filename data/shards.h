// data/shards.h: latent shards, the intermediate files of the data tools (`causvid encode`,
// `causvid ode-pairs`) that `causvid lmdb build` aggregates into one LMDB, and that LMDB
// build itself: a port of CausVid's causvid/ode_data/create_lmdb_iterative.py
// (process_data_dict + store_arrays_to_lmdb + the final "<array>_shape" keys).
//
// Two shard formats are read (detected by content, not by name):
//   - CausVid's own .pt files: a torch.save'd dict {prompt: tensor [1, ...]} as written by
//     causvid/models/wan/generate_ode_pairs.py ([1, S, F, C, H, W]) and
//     distillation_data/compute_vae_latent.py ([1, F, C, H, W]). Each value contributes one
//     row (its leading batch dim of 1 is dropped), in the dict's file order.
//   - ours: a safetensors file with one tensor "latents" [N, ...] (any float dtype) and the
//     metadata {"format": "causvid-shard", "version": "1", "prompts": JSON array of N UTF-8
//     strings}. Written atomically (temporary file + rename) by write_shard().
//
// LMDB build (= create_lmdb_iterative.py): shards in the order given (a folder expands to its
// *.pt, *.pth and *.safetensors files, sorted by name); a prompt seen before (exact string,
// across all shards, CausVid's `seen_prompts` set) is dropped with its latents; rows are
// written as float16 under "latents_<i>_data" and UTF-8 under "prompts_<i>_data", then
// "latents_shape" = "N <row shape>" and "prompts_shape" = "N". Deliberate differences: every
// row must have the same shape (error naming the shard), the shapes come from the rows
// (CausVid takes them from the last shard's dict, wrong when it was all duplicates), and the
// LMDB is built in "<out>.tmp.<pid>" and renamed onto <out> at the end, so a failed build
// never leaves a half LMDB under the final name.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

namespace causvid::data {

struct Shard {
  std::vector<std::string> prompts;  // N
  torch::Tensor latents;             // [N, ...] float (as stored)
};

// Reads either format; errors name the file and what is wrong.
Shard read_shard(const std::string& path);
// Writes our format atomically. latents [N, ...] are stored in `dtype`.
void write_shard(const std::string& path, const std::vector<std::string>& prompts,
                 const torch::Tensor& latents, torch::ScalarType dtype = torch::kFloat32);

// Expands folders into their shard files (*.pt, *.pth, *.safetensors, sorted by name) and
// keeps files as given. A missing path, or a folder without shards, is an error.
std::vector<std::string> list_shards(const std::vector<std::string>& inputs);

struct LmdbBuildOptions {
  bool overwrite = false;  // replace an existing output
  std::string latents_array = "latents";
  std::string prompts_array = "prompts";
};
struct LmdbBuildStats {
  int64_t shards = 0, rows_read = 0, rows_written = 0, duplicates = 0;
  std::vector<int64_t> latents_shape;  // [N, ...] as stored in "<latents>_shape"
};
// progress(shards done, total shards, rows written so far).
LmdbBuildStats build_lmdb_from_shards(
    const std::vector<std::string>& shard_files, const std::string& out,
    const LmdbBuildOptions& opts = {},
    const std::function<void(int64_t, int64_t, int64_t)>& progress = nullptr);

// The text printed by `causvid lmdb info`: one line per array ("<name>: shape [..], rows N,
// <kind>") and the first prompt when a "prompts" array exists.
std::string lmdb_info(const std::string& path);

}  // namespace causvid::data

namespace causvid::data {

// How the producing tools (encode, ode-pairs) cut their work into shards: shard k holds
// items [k * shard_size, min(n, (k + 1) * shard_size)) of the global list and is produced by
// rank k % world_size, so the files do not depend on the number of ranks and a rerun skips
// the shards that exist (resumable).
struct ShardPlan {
  int64_t num_items = 0, shard_size = 1;
  int64_t num_shards() const { return (num_items + shard_size - 1) / shard_size; }
  int64_t begin(int64_t k) const { return k * shard_size; }
  int64_t end(int64_t k) const { return std::min(num_items, (k + 1) * shard_size); }
  std::vector<int64_t> shards_of(int rank, int world_size) const;
  // Items of this rank's shards whose file under dir/prefix does not exist yet (the work
  // left: what a progress line counts).
  int64_t items_to_do(int rank, int world_size, const std::string& dir,
                      const std::string& prefix) const;
};
// "<dir>/<prefix>_<k, 6 digits>.safetensors"
std::string shard_path(const std::string& dir, const std::string& prefix, int64_t k);

}  // namespace causvid::data
