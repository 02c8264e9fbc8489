// inference/vbench.cpp: see vbench.h.
#include "inference/vbench.h"

#include <filesystem>

#include "core/progress.h"
#include "data/video_io.h"

namespace causvid::inference {

std::string vbench_video_name(const std::string& prompt, int64_t index) {
  TORCH_CHECK(prompt.find('/') == std::string::npos && prompt.find('\0') == std::string::npos,
              "vbench name: prompt '", prompt.substr(0, 80), "' contains '/'; use --naming index");
  std::string name = prompt + "-" + std::to_string(index) + ".mp4";
  TORCH_CHECK(name.size() <= 255, "vbench name: '", prompt.substr(0, 60), "...' gives a ",
              name.size(), "-byte file name (limit 255); pass --names-from with VBench's short "
              "prompt list (e.g. vbench_all_dimension.txt for the longer list) or --naming index");
  return name;
}

std::vector<VbenchItem> vbench_items(const std::vector<std::string>& prompts,
                                     const std::vector<std::string>& names, int64_t samples,
                                     int64_t base_seed, const std::string& naming) {
  TORCH_CHECK(samples > 0, "--samples: got ", samples, ", want > 0");
  TORCH_CHECK(names.empty() || names.size() == prompts.size(), "--names-from: ", names.size(),
              " names for ", prompts.size(), " prompts; want one name per prompt line");
  TORCH_CHECK(naming == "vbench" || naming == "index", "--naming: got '", naming,
              "', want vbench | index");
  std::vector<VbenchItem> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    for (int64_t j = 0; j < samples; ++j) {
      VbenchItem it;
      it.prompt_index = static_cast<int64_t>(i);
      it.sample_index = j;
      it.prompt = prompts[i];
      if (naming == "index") {
        char b[64];
        std::snprintf(b, sizeof(b), "%04zu-%lld.mp4", i, (long long)j);
        it.file = b;
      } else {
        it.file = vbench_video_name(names.empty() ? prompts[i] : names[i], j);
      }
      it.seed = base_seed + static_cast<int64_t>(i) * samples + j;
      out.push_back(it);
    }
  }
  return out;
}

std::vector<VbenchItem> split_for_rank(const std::vector<VbenchItem>& items, int rank, int world) {
  TORCH_CHECK(world > 0 && rank >= 0 && rank < world, "split: rank ", rank, " of ", world);
  std::vector<VbenchItem> out;
  for (size_t k = 0; k < items.size(); ++k)
    if (static_cast<int>(k % world) == rank) out.push_back(items[k]);
  return out;
}

double temporal_flickering(const torch::Tensor& frames) {
  TORCH_CHECK(frames.dim() == 4 && frames.size(0) >= 2 && frames.scalar_type() == torch::kUInt8,
              "temporal_flickering: got ", frames.sizes(), " ", frames.scalar_type(),
              ", want [F>=2,3,H,W] uint8");
  auto f = frames.to(torch::kFloat32);
  // mean |f_i - f_{i+1}| per pair (float64 accumulation), then the mean over pairs.
  auto mae = (f.slice(0, 0, -1) - f.slice(0, 1)).abs().flatten(1).to(torch::kFloat64).mean(1);
  return (255.0 - mae.mean().item<double>()) / 255.0;
}

double temporal_flickering_file(const std::string& path) {
  return temporal_flickering(data::read_video(path));
}

bool video_complete(const std::string& path, int64_t min_frames) {
  if (!std::filesystem::is_regular_file(path)) return false;
  try {
    auto info = data::probe_video(path);
    if (info.num_frames_exact) return info.num_frames >= min_frames;
    return data::read_video(path).size(0) >= min_frames;
  } catch (const std::exception&) {
    return false;
  }
}

nlohmann::json vbench_metrics(const std::string& dir, const std::vector<VbenchItem>& items) {
  nlohmann::json videos = nlohmann::json::array(), missing = nlohmann::json::array(),
                 failed = nlohmann::json::array();
  double sum = 0;
  int64_t n = 0;
  core::Progress progress("vbench metrics", static_cast<int64_t>(items.size()));
  for (const auto& it : items) {
    progress.add();
    const std::string path = dir + "/" + it.file;
    if (!std::filesystem::is_regular_file(path)) {
      missing.push_back(it.file);
      continue;
    }
    double s = 0;
    try {
      s = temporal_flickering_file(path);
    } catch (const std::exception& e) {
      const auto* ce = dynamic_cast<const c10::Error*>(&e);
      failed.push_back({{"file", it.file}, {"reason", ce ? ce->what_without_backtrace() : e.what()}});
      continue;
    }
    videos.push_back({{"file", it.file}, {"prompt", it.prompt}, {"score", s}});
    sum += s;
    ++n;
  }
  nlohmann::json j;
  j["temporal_flickering"] = {
      {"score", n ? sum / n : 0.0},
      {"num_videos", n},
      {"definition",
       "VBench temporal_flickering: mean over videos of (255 - mean_i mean|f_i - f_{i+1}|) / 255 "
       "on 8-bit frames; VBench's RAFT static filter is not applied"},
      {"videos", videos}};
  j["missing"] = missing;
  j["failed"] = failed;
  j["num_items"] = items.size();
  return j;
}

}  // namespace causvid::inference
