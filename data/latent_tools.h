// data/latent_tools.h: `causvid encode`, one of the two producing tools whose shards
// `causvid lmdb build` aggregates (the other, ode-pairs, is inference/ode_pairs.h).
//
// encode_videos (`causvid encode`) ports CausVid's distillation_data/compute_vae_latent.py:
// each video (already preprocessed to 81 frames of 480x832) is read as [F,3,H,W] in [-1,1],
// VAE-encoded to normalised latents [21,16,60,104] and stored with its caption from a JSON
// {file name: caption}. Work is split over ranks by shard (see ShardPlan).
// Errors vs skips: a video without a caption is an error before any encoding (a wrong
// captions file must not silently drop data); an unreadable or wrong-length video is
// skipped, logged with its reason and counted as failed (one corrupt file in a crawl must
// not stop a long run); the command reports the counts, lists the failed videos in
// <out>/failures.txt and exits non-zero.
//
// generate_ode_pairs (`causvid ode-pairs`), which needs the teacher sampler, is in
// inference/ode_pairs.h.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "core/failures.h"
#include "models/t5/text_conditioner.h"
#include "models/vae/wan_vae.h"

namespace causvid::data {

// {file name: caption} JSON; errors name the file. Values must be strings.
std::map<std::string, std::string> read_captions(const std::string& path);
// The caption of a video path: by file name ("a.mp4"), else by stem ("a"). Empty if none.
std::string caption_for(const std::map<std::string, std::string>& captions,
                        const std::string& video_path);

struct EncodeOptions {
  int64_t frames = 81;        // frames read from each video (1 + 4k)
  int width = 0, height = 0;  // 0: keep the video's size
  int64_t shard_size = 16;    // videos per shard
  std::string prefix = "latents";
  torch::ScalarType store_dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
  torch::ScalarType compute_dtype = torch::kFloat32;
};
struct ToolStats {
  int64_t done = 0, failed = 0, shards_written = 0, shards_existing = 0;
  double seconds = 0;
  // This rank's failed items (file or prompt, reason), including those an earlier run
  // recorded beside a shard that is now skipped (see shard_failures_path).
  std::vector<core::ItemFailure> failures;
};

// A shard written with some items failed keeps them in "<shard stem>.failures.txt" beside it
// (written before the shard, which is the commit): a rerun skips the shard, so its finished
// items are not redone, but still reports the failed ones (delete the shard to retry them).
std::string shard_failures_path(const std::string& shard_path);
// The failures recorded beside an existing shard, each reason saying how to retry.
std::vector<core::ItemFailure> earlier_shard_failures(const std::string& shard_path);

ToolStats encode_videos(models::WanVAEWrapper& vae, const std::vector<std::string>& videos,
                        const std::map<std::string, std::string>& captions,
                        const std::string& out_dir, const EncodeOptions& opts, int rank = 0,
                        int world_size = 1);

}  // namespace causvid::data
