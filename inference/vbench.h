// inference/vbench.h: what `causvid eval vbench` needs besides the generator: VBench's
// file naming for its prompt suite, the work list and its disjoint split over ranks, and
// the VBench quality dimensions that need no neural network, computed in C++.
//
// Naming (Vchitect/VBench prompts/README.md, "How to Sample Videos for Evaluation"): for
// each prompt 5 samples saved as "$prompt-$index.mp4", index 0..4; the evaluator finds the
// videos of its prompt suite by these exact names (standard mode), and custom_input mode
// reads the prompt back from the name.
//
// Metric (Vchitect/VBench vbench/temporal_flickering.py): per video, the mean over
// consecutive frame pairs of mean(|f_i - f_{i+1}|) over all pixels and channels (8-bit
// values as float32), score = (255 - that) / 255; the dimension score is the mean over
// videos. VBench computes it on videos kept by its static filter (RAFT optical flow), which
// needs a network: here it is computed on every video (documented in docs/generate.md).
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace causvid::inference {

// "<prompt>-<index>.mp4". Throws naming the prompt if it contains '/' or NUL or the name
// exceeds 255 bytes (use --names-from with VBench's short prompt list, or --naming index).
std::string vbench_video_name(const std::string& prompt, int64_t index);

struct VbenchItem {
  int64_t prompt_index = 0, sample_index = 0;
  std::string prompt;  // what conditions the generation
  std::string file;    // file name inside the output directory
  int64_t seed = 0;    // base_seed + prompt_index * samples + sample_index
};
// names: the naming prompts (same count as prompts; e.g. VBench's short list when
// generating from the augmented "longer" list), or empty to name by the prompts.
// naming: "vbench" ("<name>-<i>.mp4") or "index" ("<NNNN>-<i>.mp4").
std::vector<VbenchItem> vbench_items(const std::vector<std::string>& prompts,
                                     const std::vector<std::string>& names, int64_t samples,
                                     int64_t base_seed, const std::string& naming = "vbench");
// Disjoint split: rank r of w takes items k with k % w == r.
std::vector<VbenchItem> split_for_rank(const std::vector<VbenchItem>& items, int rank, int world);

// VBench temporal flickering of one video's frames [F,3,H,W] uint8 (F >= 2).
double temporal_flickering(const torch::Tensor& frames_uint8);
double temporal_flickering_file(const std::string& path);

// True when `path` is a readable video with at least min_frames frames (resume check).
bool video_complete(const std::string& path, int64_t min_frames);

// Metrics over the items' files in `dir`: {"temporal_flickering": {"score", "num_videos",
// "videos": [{"file", "prompt", "score"}]}, "missing": [files], "failed": [{"file", "reason"}]
// (unreadable videos, left out of the score), ...}.
nlohmann::json vbench_metrics(const std::string& dir, const std::vector<VbenchItem>& items);

}  // namespace causvid::inference
