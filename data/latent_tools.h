// data/latent_tools.h: the two producing tools whose shards `causvid lmdb build` aggregates.
//
// encode_videos (`causvid encode`) ports CausVid's distillation_data/compute_vae_latent.py:
// each video (already preprocessed to 81 frames of 480x832) is read as [F,3,H,W] in [-1,1],
// VAE-encoded to normalised latents [21,16,60,104] and stored with its caption from a JSON
// {file name: caption}. Work is split over ranks by shard (see ShardPlan).
// Errors vs skips: a video without a caption is an error before any encoding (a wrong
// captions file must not silently drop data); an unreadable or wrong-length video is
// skipped, logged with its reason and counted as failed (one corrupt file in a crawl must
// not stop a long run); the command reports the counts.
//
// generate_ode_pairs (`causvid ode-pairs`) ports causvid/models/wan/generate_ode_pairs.py:
// for each prompt the bidirectional teacher samples from Gaussian noise with the N-step
// Euler grid (shift 8) and classifier-free guidance on the negative prompt
// (inference::sample_teacher), and the trajectory points at `keep` (default [0, 36, 44, -1]
// of the N+1 points, noise first) are stored as one row [S, F, C, H, W]. The noise of prompt
// i comes from a CPU generator seeded seed + i, so the data do not depend on the number of
// ranks or on resuming. Deliberate difference: one shard per `shard_size` prompts (the
// reference writes one .pt per prompt) and existing shards are skipped (resumable).
// The teacher runs in float32 whatever mixed_precision says (the reference samples in
// bf16 on GPU); TODO(data): a bf16 teacher once sample_teacher is checked in bf16.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "models/t5/text_conditioner.h"
#include "models/vae/wan_vae.h"
#include "models/wan/wan_wrapper.h"

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
};

ToolStats encode_videos(models::WanVAEWrapper& vae, const std::vector<std::string>& videos,
                        const std::map<std::string, std::string>& captions,
                        const std::string& out_dir, const EncodeOptions& opts, int rank = 0,
                        int world_size = 1);

struct OdePairOptions {
  int64_t num_steps = 50;
  double guidance_scale = 6.0;
  double shift = 8.0;
  std::vector<int64_t> keep = {0, 36, 44, -1};  // trajectory indices, -1 = the last
  std::vector<int64_t> shape_FCHW;              // latent shape per sample
  std::string negative_prompt;
  int64_t seed = 0;
  int64_t shard_size = 16;  // prompts per shard
  std::string prefix = "ode_pairs";
  torch::ScalarType store_dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
};
// The indices of `keep` resolved against num_steps + 1 points; errors name --keep.
std::vector<int64_t> resolve_keep_indices(const std::vector<int64_t>& keep, int64_t num_steps);

ToolStats generate_ode_pairs(const models::WanDiffusionWrapper& teacher,
                             models::TextConditioner& text, const std::vector<std::string>& prompts,
                             const std::string& out_dir, const OdePairOptions& opts, int rank = 0,
                             int world_size = 1);

}  // namespace causvid::data
