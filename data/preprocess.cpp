// data/preprocess.cpp: CausVid's distillation_data/process_mixkit.py. See preprocess.h.
#include "data/preprocess.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"

namespace causvid::data {
namespace fs = std::filesystem;

const char* preprocess_status_name(PreprocessStatus s) {
  switch (s) {
    case PreprocessStatus::kProcessed:
      return "processed";
    case PreprocessStatus::kSkipped:
      return "skipped";
    case PreprocessStatus::kFailed:
      return "failed";
  }
  return "?";
}

std::vector<std::string> list_videos(const std::string& dir) {
  std::error_code ec;
  TORCH_CHECK(fs::is_directory(dir, ec), dir, ": video folder not found");
  static const char* kExt[] = {".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm"};
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    // A symlink loop or a dangling link with a video name is listed and then fails as one
    // item (its probe names the error) instead of aborting the listing.
    std::error_code st_ec;
    const bool regular = e.is_regular_file(st_ec);
    if (!regular && !(st_ec && e.is_symlink(st_ec))) continue;
    auto ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (const char* k : kExt)
      if (ext == k) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

PreprocessResult preprocess_video(const std::string& input, const std::string& output,
                                  const PreprocessOptions& o) {
  PreprocessResult r;
  r.input = input;
  r.output = output;
  if (!o.overwrite && core::file_exists(output)) {
    r.status = PreprocessStatus::kSkipped;
    r.reason = "output exists";
    return r;
  }
  std::error_code link_ec;
  (void)fs::status(input, link_ec);
  if (link_ec) {  // a symlink loop or a dangling link: say so rather than "no such file"
    r.status = PreprocessStatus::kFailed;
    r.reason = "cannot resolve the path: " + link_ec.message();
    return r;
  }
  try {
    auto info = probe_video(input);
    if (!is_aspect_16_9(info.width, info.height, o.aspect_tolerance)) {
      r.status = PreprocessStatus::kSkipped;
      r.reason =
          "not 16:9 (" + std::to_string(info.width) + "x" + std::to_string(info.height) + ")";
      return r;
    }
    DecodeOptions d;
    d.width = o.width;
    d.height = o.height;
    d.filter = o.filter;
    d.target_fps = o.fps;
    d.num_frames = o.frames;
    d.allow_fewer = true;
    d.threads = 1;  // parallelism is over files
    auto v = decode_video(input, d);
    if (v.frames.size(0) < o.frames) {
      r.status = PreprocessStatus::kSkipped;
      r.reason = "too short (" + std::to_string(v.frames.size(0)) + " frames at " +
                 std::to_string(o.fps) + " fps, want " + std::to_string(o.frames) + ")";
      return r;
    }
    WriterOptions w;
    w.fps = o.fps;
    w.codec = o.codec;
    w.crf = o.crf;
    w.threads = 1;
    write_video(output, v.frames, w);
    r.status = PreprocessStatus::kProcessed;
  } catch (const c10::Error& e) {
    r.status = PreprocessStatus::kFailed;
    r.reason = e.what_without_backtrace();
  } catch (const std::exception& e) {
    r.status = PreprocessStatus::kFailed;
    r.reason = e.what();
  }
  return r;
}

PreprocessSummary preprocess_videos(const std::vector<std::string>& inputs,
                                    const std::string& out_dir, const PreprocessOptions& o,
                                    int rank, int world_size) {
  TORCH_CHECK(o.width > 0 && o.height > 0 && o.width % 2 == 0 && o.height % 2 == 0,
              "--width/--height: got ", o.width, "x", o.height, ", want positive even sizes");
  TORCH_CHECK(o.fps > 0, "--fps: got ", o.fps, ", want > 0");
  TORCH_CHECK(o.frames > 0, "--frames: got ", o.frames, ", want > 0");
  TORCH_CHECK(o.jobs >= 1, "--jobs: got ", o.jobs, ", want >= 1");
  TORCH_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "rank ", rank, " of ", world_size);
  core::make_dirs(out_dir);
  std::vector<std::string> mine;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (static_cast<int>(i % world_size) == rank) mine.push_back(inputs[i]);
  PreprocessSummary s;
  s.results.resize(mine.size());
  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<size_t> next{0};
  core::Progress progress("preprocess: videos", static_cast<int64_t>(mine.size()));
  std::mutex progress_mu;  // Progress is not thread-safe
  auto worker = [&] {
    for (size_t i; (i = next++) < mine.size();) {
      const auto out = (fs::path(out_dir) / fs::path(mine[i]).stem()).string() + ".mp4";
      auto r = preprocess_video(mine[i], out, o);
      if (r.status == PreprocessStatus::kFailed)
        LOG_WARN("%s: failed: %s", r.input, r.reason);
      else if (r.status == PreprocessStatus::kSkipped)
        LOG_INFO("%s: skipped: %s", r.input, r.reason);
      s.results[i] = std::move(r);
      std::lock_guard<std::mutex> lock(progress_mu);
      progress.add();
    }
  };
  const int nthreads = std::max(1, std::min<int>(o.jobs, static_cast<int>(mine.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < nthreads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  progress.finish();
  for (const auto& r : s.results) {
    if (r.status == PreprocessStatus::kProcessed) ++s.processed;
    if (r.status == PreprocessStatus::kSkipped) ++s.skipped;
    if (r.status == PreprocessStatus::kFailed) ++s.failed;
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

}  // namespace causvid::data
