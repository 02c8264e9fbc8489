// inference/generate_main.cpp: `causvid generate`, the CLI of inference/generate.h (ports
// CausVid's minimal_inference/*.py scripts into one command). Thin: parse, build, run.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/args.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/prompt_cache.h"
#include "inference/generate.h"
#include "inference/generate_setup.h"

namespace causvid::cli {

int generate_main(int argc, char** argv) {
  core::ArgParser p("causvid generate",
                    "Text (image, video) to video with a CausVid model: causal streaming, "
                    "bidirectional or teacher sampling, long video, v2v, i2v, dynamic prompts.");
  inference::GenerateFlags f(p);
  auto& prompt = p.flag("--prompt", "", "one prompt (or use --prompts / --prompt-schedule)");
  auto& prompts = p.flag("--prompts", "", "file with one prompt per line: a batch");
  auto& schedule = p.flag("--prompt-schedule", "",
                          "dynamic prompting: lines '<start block>: <prompt>' or "
                          "'<seconds>s: <prompt>', starting at 0, increasing");
  auto& out = p.flag("--out", "outputs/generate",
                     "output .mp4 (one prompt) or directory (files NNNN-<prompt>.mp4)");
  auto& image = p.flag("--image", "", "image-to-video: the first frame (PNG/JPEG/...)");
  auto& video = p.flag("--video", "", "video-to-video (SDEdit): the input video");
  auto& raw = p.flag("--stream-raw", "",
                     "also write raw RGB24 frames as they are made ('-' = stdout, a FIFO, a file)");
  auto& latents_out = p.flag("--latents-out", "",
                             "write the latents [F,C,h,w] as safetensors 'latents' (one prompt); "
                             "in directory mode <name>.latents.safetensors when set to 'auto'");
  if (!p.parse(argc, argv)) return p.exit_code();

  auto setup = f.build();
  const auto& opts = setup.generator->options();
  std::vector<inference::SampleSpec> specs;
  std::vector<std::string> list;
  std::vector<inference::ScheduleEntry> sched;
  if (!schedule.empty()) {
    sched = inference::read_prompt_schedule(schedule);
    list.push_back(sched.front().prompt);
  }
  if (!prompt.empty()) list.push_back(prompt);
  if (!prompts.empty()) {
    auto l = data::read_prompt_file(prompts);
    list.insert(list.end(), l.begin(), l.end());
  }
  TORCH_CHECK(!list.empty(), "no prompt: pass --prompt, --prompts or --prompt-schedule");
  TORCH_CHECK((!prompt.empty()) + (!prompts.empty()) + (!schedule.empty()) == 1,
              "--prompt, --prompts and --prompt-schedule are exclusive");
  const bool single_file = list.size() == 1 && out.size() > 4 &&
                           out.compare(out.size() - 4, 4, ".mp4") == 0;
  if (!single_file) core::make_dirs(out);
  for (size_t i = 0; i < list.size(); ++i) {
    inference::SampleSpec s;
    s.prompt = list[i];
    s.schedule = sched;
    s.schedule_source = schedule;
    s.seed = setup.seed + static_cast<int64_t>(i);
    char idx[32];
    std::snprintf(idx, sizeof(idx), "%04zu", i);
    const std::string stem = single_file ? out.substr(0, out.size() - 4)
                                         : out + "/" + idx + "-" + inference::safe_filename(list[i]);
    s.out_path = stem + ".mp4";
    s.raw_path = raw;
    if (latents_out == "auto") s.latents_out = stem + ".latents.safetensors";
    else if (!latents_out.empty()) {
      TORCH_CHECK(list.size() == 1, "--latents-out PATH needs one prompt; use 'auto' for a batch");
      s.latents_out = latents_out;
    }
    s.image = image;
    s.video = video;
    setup.generator->check(s);  // every sample's inputs before the first model call
    specs.push_back(s);
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    LOG_INFO("sample %zu/%zu seed %lld: %s", i + 1, specs.size(), (long long)specs[i].seed,
             specs[i].prompt.c_str());
    auto r = setup.generator->generate(specs[i]);
    std::string lat;
    for (double b : r.block_s) lat += c10::str(" ", static_cast<int64_t>(b * 1000));
    LOG_INFO("time to first frame %.3f s; per-block latency (ms):%s", r.first_frame_s,
             lat.c_str());
    LOG_INFO("%lld frames in %.3f s = %.2f FPS (%s, %lld latent frames, KV cache %.1f MiB)",
             (long long)r.pixel_frames, r.total_s, r.pixel_frames / r.total_s, opts.mode.c_str(),
             (long long)r.latents.size(0), r.kv_cache_bytes / 1048576.0);
    std::printf("%s\n", specs[i].out_path.c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace causvid::cli
