// data/latent_tools.cpp: `causvid encode` work (see latent_tools.h).
#include "data/latent_tools.h"

#include <c10/core/InferenceMode.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/shards.h"
#include "data/video_io.h"

namespace causvid::data {
namespace fs = std::filesystem;

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

std::map<std::string, std::string> read_captions(const std::string& path) {
  TORCH_CHECK(core::file_exists(path), path, ": captions file not found");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(core::read_file(path));
  } catch (const std::exception& e) {
    TORCH_CHECK(false, path, ": not valid JSON: ", e.what());
  }
  TORCH_CHECK(j.is_object(), path, ": got a JSON ", j.type_name(),
              ", want an object {\"video file name\": \"caption\"}");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : j.items()) {
    TORCH_CHECK(v.is_string(), path, ": caption of '", k, "' is a ", v.type_name(),
                ", want a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

std::string caption_for(const std::map<std::string, std::string>& captions,
                        const std::string& video_path) {
  const fs::path p(video_path);
  auto it = captions.find(p.filename().string());
  if (it == captions.end()) it = captions.find(p.stem().string());
  return it == captions.end() ? std::string() : it->second;
}

std::string shard_failures_path(const std::string& shard_path) {
  fs::path p(shard_path);
  return (p.parent_path() / (p.stem().string() + ".failures.txt")).string();
}

std::vector<core::ItemFailure> earlier_shard_failures(const std::string& shard_path) {
  auto f = core::read_failures(shard_failures_path(shard_path));
  for (auto& x : f) x.reason = "(earlier run; delete " + shard_path + " to retry) " + x.reason;
  return f;
}

ToolStats encode_videos(models::WanVAEWrapper& vae, const std::vector<std::string>& videos,
                        const std::map<std::string, std::string>& captions,
                        const std::string& out_dir, const EncodeOptions& o, int rank,
                        int world_size) {
  TORCH_CHECK(o.frames >= 1 && (o.frames - 1) % 4 == 0, "--frames: got ", o.frames,
              ", want 1 + 4k (81 for Wan)");
  TORCH_CHECK(!videos.empty(), "encode: no videos");
  // Every video needs a caption: checked before any work, on every rank.
  std::vector<std::string> missing;
  for (const auto& v : videos)
    if (caption_for(captions, v).empty()) missing.push_back(fs::path(v).filename().string());
  if (!missing.empty()) {
    std::ostringstream m;
    for (size_t i = 0; i < missing.size() && i < 5; ++i) m << (i ? ", " : "") << missing[i];
    if (missing.size() > 5) m << ", ...";
    TORCH_CHECK(false, "--captions: no caption for ", missing.size(), " of ", videos.size(),
                " videos (", m.str(), "); want a key per video file name");
  }
  core::make_dirs(out_dir);
  ShardPlan plan{static_cast<int64_t>(videos.size()), o.shard_size};
  ToolStats st;
  const auto t0 = std::chrono::steady_clock::now();
  c10::InferenceMode guard;
  core::Progress progress("vae-encode", plan.items_to_do(rank, world_size, out_dir, o.prefix));
  for (int64_t k : plan.shards_of(rank, world_size)) {
    const auto path = shard_path(out_dir, o.prefix, k);
    if (core::file_exists(path)) {
      ++st.shards_existing;
      auto earlier = earlier_shard_failures(path);
      st.failed += static_cast<int64_t>(earlier.size());
      st.failures.insert(st.failures.end(), earlier.begin(), earlier.end());
      continue;
    }
    std::vector<std::string> prompts;
    std::vector<torch::Tensor> rows;
    std::vector<core::ItemFailure> failed;
    for (int64_t i = plan.begin(k); i < plan.end(k); ++i) {
      const auto& v = videos[i];
      try {
        DecodeOptions d;
        d.width = o.width;
        d.height = o.height;
        d.num_frames = o.frames;
        auto px = read_video_float(v, d);  // [F,3,H,W] in [-1,1]
        auto px_BCFHW = px.permute({1, 0, 2, 3}).unsqueeze(0).to(o.device, o.compute_dtype);
        auto lat = vae.encode_to_latent(px_BCFHW);  // [1,F',z,h,w]
        rows.push_back(lat[0].to(torch::kCPU, torch::kFloat));
        prompts.push_back(caption_for(captions, v));
        ++st.done;
      } catch (const std::exception& e) {
        const auto* ce = dynamic_cast<const c10::Error*>(&e);
        failed.push_back({v, ce ? ce->what_without_backtrace() : e.what()});
        ++st.failed;
        LOG_WARN("%s: failed: %s", v, failed.back().reason);
      }
      progress.add();
    }
    st.failures.insert(st.failures.end(), failed.begin(), failed.end());
    if (rows.empty()) continue;  // no shard: a rerun retries all of its videos
    core::write_failures(shard_failures_path(path), failed);  // before the shard (the commit)
    write_shard(path, prompts, torch::stack(rows), o.store_dtype);
    ++st.shards_written;
    LOG_INFO("%s: %d videos, %.2f s/video", path, rows.size(),
             since(t0) / std::max<int64_t>(st.done, 1));
  }
  progress.finish();
  st.seconds = since(t0);
  return st;
}

}  // namespace causvid::data
