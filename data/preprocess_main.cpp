// data/preprocess_main.cpp: `causvid preprocess` (CausVid's distillation_data/
// process_mixkit.py). Thin: parse, split over ranks, run, print the summary.
#include <cstdio>

#include "cli/commands.h"
#include "core/args.h"
#include "core/dist.h"
#include "core/log.h"
#include "data/preprocess.h"

namespace causvid::cli {

int preprocess_main(int argc, char** argv) {
  core::ArgParser p("causvid preprocess",
                    "Prepare raw videos for VAE encoding as CausVid's process_mixkit.py: keep "
                    "16:9 videos only, resize to WIDTHxHEIGHT, resample to FPS, keep the first "
                    "FRAMES frames, write mp4 (H.264). Parallel over files (--jobs) and over "
                    "ranks (torchrun/SLURM/MPI: file i goes to rank i % world size).");
  auto& input = p.flag("--input", "", "folder of videos (.mp4 .mov .m4v .mkv .avi .webm)");
  auto& output = p.flag("--output", "", "output folder (<stem>.mp4 per processed video)");
  auto& width = p.flag("--width", "832", "output width");
  auto& height = p.flag("--height", "480", "output height");
  auto& fps = p.flag("--fps", "16", "output frame rate");
  auto& frames = p.flag("--frames", "81", "frames kept (shorter videos are skipped)");
  auto& tol = p.flag("--aspect-tolerance", "0.1", "relative tolerance of the 16:9 test");
  auto& jobs = p.flag("--jobs", "1", "worker threads per rank");
  auto& crf = p.flag("--crf", "18", "libx264 quality (0 lossless .. 51)");
  auto& overwrite = p.toggle("--overwrite", "redo videos whose output exists (default: skip)");
  if (!p.parse(argc, argv)) return p.exit_code();
  TORCH_CHECK(!input.empty(), "--input: required");
  TORCH_CHECK(!output.empty(), "--output: required");
  data::PreprocessOptions o;
  o.width = core::ArgParser::to_int("--width", width);
  o.height = core::ArgParser::to_int("--height", height);
  o.fps = core::ArgParser::to_double("--fps", fps);
  o.frames = core::ArgParser::to_int("--frames", frames);
  o.aspect_tolerance = core::ArgParser::to_double("--aspect-tolerance", tol);
  o.jobs = core::ArgParser::to_int("--jobs", jobs);
  o.crf = core::ArgParser::to_int("--crf", crf);
  o.overwrite = overwrite == "1";
  auto files = data::list_videos(input);
  TORCH_CHECK(!files.empty(), input, ": no video files in the folder");
  auto dist = core::DistContext::init_from_env();
  core::set_log_rank(dist->rank());
  LOG_INFO("%d videos, rank %d/%d, %d jobs", files.size(), dist->rank(), dist->world_size(),
           o.jobs);
  auto s = data::preprocess_videos(files, output, o, dist->rank(), dist->world_size());
  // Summary over all ranks.
  const auto c = dist->world().sum({s.processed, s.skipped, s.failed});
  LOG_INFO("rank %d: %d processed, %d skipped, %d failed in %.2f s (%.2f videos/s)", dist->rank(),
           s.processed, s.skipped, s.failed, s.seconds,
           s.results.size() / std::max(s.seconds, 1e-9));
  if (dist->is_main())
    std::printf("processed %ld, skipped %ld, failed %ld (of %zu videos)\n", static_cast<long>(c[0]),
                static_cast<long>(c[1]), static_cast<long>(c[2]), files.size());
  if (c[2] > 0) {
    LOG_ERROR("preprocess: %d of %d videos failed (their errors are logged above); the others "
              "are written, and a rerun skips them", c[2], files.size());
    return 1;
  }
  return 0;
}

}  // namespace causvid::cli
