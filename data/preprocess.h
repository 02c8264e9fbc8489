// data/preprocess.h: `causvid preprocess`, the video preparation of CausVid's
// distillation_data/process_mixkit.py (from FastVideo): keep 16:9 videos only
// (|w/h - 16/9| <= 16/9 * 0.1), stretch-resize to 832x480, resample to 16 fps (moviepy's
// previous-frame rule), keep the first 81 frames, write H.264 mp4; parallel over files (a
// pool of --jobs threads, the reference's ProcessPoolExecutor) and over ranks (file i goes
// to rank i % world_size). Ends with a summary of processed / skipped / failed as the
// reference logs it.
// Deliberate differences: a video with fewer than `frames` output frames is skipped (reason
// "too short"; the reference writes the short clip, which the 81-frame VAE encode then
// cannot use); an existing output is skipped unless overwrite (resumable); outputs are
// written atomically (VideoWriter's temporary file + rename); resize is swscale's area
// filter instead of skimage's gaussian + bilinear (see data/video_io.h).
#pragma once

#include <string>
#include <vector>

#include "data/video_io.h"

namespace causvid::data {

struct PreprocessOptions {
  int width = 832, height = 480;
  double fps = 16;
  int64_t frames = 81;
  double aspect_tolerance = 0.1;  // relative, process_mixkit.py's is_16_9_ratio tolerance
  int jobs = 1;                   // worker threads per rank
  bool overwrite = false;
  ResizeFilter filter = ResizeFilter::kAuto;
  std::string codec = "libx264";
  int crf = 18;
};

enum class PreprocessStatus { kProcessed, kSkipped, kFailed };
const char* preprocess_status_name(PreprocessStatus s);

struct PreprocessResult {
  std::string input, output;
  PreprocessStatus status = PreprocessStatus::kFailed;
  std::string reason;  // why skipped / failed
};

struct PreprocessSummary {
  int64_t processed = 0, skipped = 0, failed = 0;
  std::vector<PreprocessResult> results;  // this rank's files, in input order
  double seconds = 0;
};

// Video files of a folder (.mp4 .mov .m4v .mkv .avi .webm, case-insensitive), sorted.
// A missing folder is an error. Links whose target cannot be resolved (a loop, a dangling
// link) are listed too, so that they fail as items rather than abort the listing.
std::vector<std::string> list_videos(const std::string& dir);

// One file: probe, aspect check, decode + resize + resample + cut, write. Never throws for
// a bad video (status kFailed with the error text); throws only on bad options.
PreprocessResult preprocess_video(const std::string& input, const std::string& output,
                                  const PreprocessOptions& opts);

// The files of `rank` (i % world_size == rank) of `inputs` into out_dir/<stem>.mp4 with
// opts.jobs threads. out_dir is created.
PreprocessSummary preprocess_videos(const std::vector<std::string>& inputs,
                                    const std::string& out_dir, const PreprocessOptions& opts,
                                    int rank = 0, int world_size = 1);

}  // namespace causvid::data
