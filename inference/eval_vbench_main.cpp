// inference/eval_vbench_main.cpp: `causvid eval vbench`: generates the videos of a VBench
// prompt list (N samples per prompt, named "<prompt>-<index>.mp4" as VBench expects),
// resumable and split over ranks, then computes the network-free VBench metrics in C++ and
// writes a JSON summary. See inference/vbench.h and docs/generate.md.
#include <cstdio>

#include "cli/commands.h"
#include "core/args.h"
#include "core/dist.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/prompt_cache.h"
#include "inference/generate_setup.h"
#include "inference/vbench.h"

namespace causvid::cli {

int eval_vbench_main(int argc, char** argv) {
  core::ArgParser p("causvid eval vbench",
                    "VBench sampling (N videos per prompt, '<prompt>-<i>.mp4', 16 fps) with a "
                    "CausVid model, resumable and split over ranks; then C++ metrics.");
  inference::GenerateFlags f(p);
  auto& prompts_path = p.flag("--prompts", "", "prompt list, one per line (e.g. "
                                               "vbench_all_dimension.txt)");
  auto& names_from = p.flag("--names-from", "",
                            "name the videos by this list instead (same line count; e.g. the "
                            "short VBench prompts when --prompts is the longer list)");
  auto& naming = p.flag("--naming", "vbench", "vbench: <prompt>-<i>.mp4 | index: NNNN-<i>.mp4");
  auto& samples_s = p.flag("--samples", "5", "videos per prompt (VBench: 5; 25 for flickering)");
  auto& out = p.flag("--out", "outputs/vbench", "output directory");
  auto& limit_s = p.flag("--limit", "0", "only the first N prompts (0 = all)");
  auto& metrics_only = p.toggle("--metrics-only", "skip generation; compute metrics on --out");
  auto& summary = p.flag("--summary", "", "JSON summary path; '' = <out>/causvid_vbench_summary.json");
  if (!p.parse(argc, argv)) return p.exit_code();

  TORCH_CHECK(!prompts_path.empty(), "--prompts: a prompt list is required");
  auto prompts = data::read_prompt_file(prompts_path);
  std::vector<std::string> names;
  if (!names_from.empty()) names = data::read_prompt_file(names_from);
  const int64_t limit = core::ArgParser::to_int("--limit", limit_s);
  if (limit > 0 && static_cast<int64_t>(prompts.size()) > limit) {
    prompts.resize(limit);
    if (!names.empty()) names.resize(std::min<size_t>(names.size(), limit));
  }
  core::DistOptions dopt;
  if (metrics_only != "1") dopt.device = f.device_spec();  // chosen before the process group
  auto dist = core::DistContext::init_from_env(dopt);
  core::set_log_rank(dist->rank());
  core::make_dirs(out);

  std::unique_ptr<inference::GenerateSetup> setup;
  int64_t seed = 0;
  if (metrics_only != "1") {
    setup = std::make_unique<inference::GenerateSetup>(f.build(dist->device()));
    seed = setup->seed;
  }
  const auto items = inference::vbench_items(prompts, names,
                                             core::ArgParser::to_int("--samples", samples_s), seed,
                                             naming);
  if (setup) {
    auto& gen = *setup->generator;
    gen.options_mut().stream = false;  // atomic: temp file + rename, never a partial final file
    gen.options_mut().quiet = true;
    const auto& o = gen.options();
    const int64_t min_frames = o.num_rollout == 1 ? gen.pixel_frames_for(o.num_frames) : 1;
    auto mine = inference::split_for_rank(items, dist->rank(), dist->world_size());
    inference::ProgressBar bar(c10::str("vbench rank ", dist->rank()), mine.size());
    int64_t done = 0, skipped = 0;
    for (const auto& it : mine) {
      const std::string path = out + "/" + it.file;
      if (inference::video_complete(path, min_frames)) {
        ++skipped;
      } else {
        inference::SampleSpec s;
        s.prompt = it.prompt;
        s.seed = it.seed;
        s.out_path = path;
        gen.generate(s);
      }
      bar.update(++done, c10::str("(", skipped, " already done)"));
    }
    bar.finish();
    LOG_INFO("rank %d: %lld videos, %lld generated, %lld skipped (complete)", dist->rank(),
             (long long)mine.size(), (long long)(mine.size() - skipped), (long long)skipped);
  }
  if (dist->world_size() > 1) dist->world().barrier();
  if (dist->is_main()) {
    auto j = inference::vbench_metrics(out, items);
    j["prompts"] = prompts_path;
    j["samples_per_prompt"] = core::ArgParser::to_int("--samples", samples_s);
    const std::string path = summary.empty() ? out + "/causvid_vbench_summary.json" : summary;
    core::write_file_atomic(path, j.dump(2) + "\n");
    LOG_INFO("temporal_flickering %.6f over %lld videos (%zu missing)",
             j["temporal_flickering"]["score"].get<double>(),
             (long long)j["temporal_flickering"]["num_videos"].get<int64_t>(), j["missing"].size());
    std::printf("%s\n", path.c_str());
  }
  return 0;
}

}  // namespace causvid::cli
