// data/latent_tools.cpp: `causvid encode` and `causvid ode-pairs` work (see latent_tools.h).
#include "data/latent_tools.h"

#include <c10/core/InferenceMode.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fs.h"
#include "core/log.h"
#include "data/shards.h"
#include "data/video_io.h"
#include "inference/causal_pipeline.h"

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
  for (int64_t k : plan.shards_of(rank, world_size)) {
    const auto path = shard_path(out_dir, o.prefix, k);
    if (core::file_exists(path)) {
      ++st.shards_existing;
      continue;
    }
    std::vector<std::string> prompts;
    std::vector<torch::Tensor> rows;
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
      } catch (const c10::Error& e) {
        ++st.failed;
        LOG_WARN("%s: skipped: %s", v, e.what_without_backtrace());
      } catch (const std::exception& e) {
        ++st.failed;
        LOG_WARN("%s: skipped: %s", v, e.what());
      }
    }
    if (rows.empty()) continue;
    write_shard(path, prompts, torch::stack(rows), o.store_dtype);
    ++st.shards_written;
    LOG_INFO("%s: %d videos, %.2f s/video", path, rows.size(),
             since(t0) / std::max<int64_t>(st.done, 1));
  }
  st.seconds = since(t0);
  return st;
}

std::vector<int64_t> resolve_keep_indices(const std::vector<int64_t>& keep, int64_t num_steps) {
  TORCH_CHECK(num_steps >= 1, "--steps: got ", num_steps, ", want >= 1");
  TORCH_CHECK(!keep.empty(), "--keep: empty, want trajectory indices such as 0,36,44,-1");
  const int64_t n = num_steps + 1;  // noise + one point per step
  std::vector<int64_t> out;
  for (auto k : keep) {
    TORCH_CHECK(k >= -n && k < n, "--keep: index ", k, " outside the ", n, " trajectory points of ",
                num_steps, " steps");
    out.push_back(k < 0 ? k + n : k);
  }
  return out;
}

ToolStats generate_ode_pairs(const models::WanDiffusionWrapper& teacher,
                             models::TextConditioner& text, const std::vector<std::string>& prompts,
                             const std::string& out_dir, const OdePairOptions& o, int rank,
                             int world_size) {
  TORCH_CHECK(!prompts.empty(), "ode-pairs: no prompts");
  TORCH_CHECK(o.shape_FCHW.size() == 4, "image_or_video_shape: want [B, F, C, H, W]");
  const auto keep = resolve_keep_indices(o.keep, o.num_steps);
  core::make_dirs(out_dir);
  ShardPlan plan{static_cast<int64_t>(prompts.size()), o.shard_size};
  ToolStats st;
  const auto t0 = std::chrono::steady_clock::now();
  c10::InferenceMode guard;
  torch::Tensor uncond;  // the negative prompt, encoded once
  auto keep_t = torch::tensor(keep, torch::kLong);
  for (int64_t k : plan.shards_of(rank, world_size)) {
    const auto path = shard_path(out_dir, o.prefix, k);
    if (core::file_exists(path)) {
      ++st.shards_existing;
      continue;
    }
    if (!uncond.defined()) uncond = text.encode({o.negative_prompt}).to(o.device);
    std::vector<std::string> ps;
    std::vector<torch::Tensor> rows;
    for (int64_t i = plan.begin(k); i < plan.end(k); ++i) {
      auto cond = text.encode({prompts[i]}).to(o.device);
      auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(o.seed + i));
      std::vector<int64_t> shape = {1};
      shape.insert(shape.end(), o.shape_FCHW.begin(), o.shape_FCHW.end());
      auto noise = torch::randn(shape, gen, torch::kFloat).to(o.device);
      auto tr = inference::sample_teacher(teacher, noise, cond, uncond, o.num_steps,
                                          o.guidance_scale, o.shift);
      // trajectory [1, N+1, F, C, H, W] -> the kept points [S, F, C, H, W]
      rows.push_back(tr.trajectory[0]
                         .index_select(0, keep_t.to(tr.trajectory.device()))
                         .to(torch::kCPU, torch::kFloat));
      ps.push_back(prompts[i]);
      ++st.done;
    }
    write_shard(path, ps, torch::stack(rows), o.store_dtype);
    ++st.shards_written;
    LOG_INFO("%s: %d prompts, %.2f s/prompt", path, rows.size(),
             since(t0) / std::max<int64_t>(st.done, 1));
  }
  st.seconds = since(t0);
  return st;
}

}  // namespace causvid::data
