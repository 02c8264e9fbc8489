// cli/generate_command.cpp: `causvid generate`, the CLI of inference/generate.h (ports
// CausVid's minimal_inference/*.py scripts into one command), and `causvid eval vbench`:
// generates the videos of a VBench prompt list (N samples per prompt, named
// "<prompt>-<index>.mp4" as VBench expects), resumable and split over ranks, then computes
// the network-free VBench metrics in C++ and writes a JSON summary (inference/vbench.h,
// docs/generate.md). Thin: parse, build, run.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/config.h"
#include "core/dist.h"
#include "core/failures.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/prompt_cache.h"
#include "inference/generate.h"
#include "inference/generate_setup.h"
#include "core/progress.h"
#include "inference/vbench.h"

namespace causvid::cli {
namespace {

// The model, sampling and output flags both commands share (inference::GenerateArgs).
void add_generate_options(CLI::App& app, inference::GenerateArgs& g) {
  app.add_option("--config", g.config, "CausVid YAML config (model_preset gives the DiT size)")
      ->type_name("YAML");
  add_repeated(app, "--set", g.sets, "config override key=value (repeatable)")
      ->type_name("KEY=VALUE");
  app.add_option("--checkpoint", g.checkpoint,
                 "generator weights: safetensors/.pth (WanModel keys), CausVid model.pt, or a "
                 "checkpoint_model_NNNNNN/ dir; '' = generator_ckpt (teacher: dit_path)");
  add_repeated(app, "--lora", g.loras,
               "LoRA file (ComfyUI or diffusers/PEFT layout) merged into the weights at SCALE "
               "(default 1); repeatable, applied in order")
      ->type_name("FILE[:SCALE]");
  app.add_option("--which", g.which, "model group inside model.pt: generator | generator_ema");
  add_optional(app, "--random-init", g.random_init,
               "SEED: random weights instead of a checkpoint (demos, benchmarks)");
  app.add_option("--mode", g.mode,
                 "causal | bidirectional | teacher; '' = causal if generator_task is "
                 "causal_video, else bidirectional")
      ->check(CLI::IsMember({"", "causal", "bidirectional", "teacher"}));
  add_optional(app, "--num-frames", g.num_frames,
               "latent frames per rollout (81 video frames = 21); default "
               "image_or_video_shape[1]; causal: a multiple of num_frame_per_block");
  add_optional(app, "--height", g.height, "latent height; default image_or_video_shape[3] (60 = 480 px)");
  add_optional(app, "--width", g.width, "latent width; default image_or_video_shape[4] (104 = 832 px)");
  app.add_option("--denoising-steps", g.denoising_steps,
                 "comma list of timesteps, e.g. 1000,757,522; default denoising_step_list "
                 "(trailing 0 dropped, warped when warp_denoising_step)")
      ->delimiter(',')
      ->allow_extra_args(false)
      ->default_str("");
  app.add_option("--window-frames", g.window_frames,
                 "rolling KV cache: attend to the last W latent frames (-1 = full cache; "
                 "default: the config's long_window / model_kwargs.local_attn_size, else full)")
      ->default_str("config");
  app.add_option("--sink-frames", g.sink_frames, "rolling KV cache: first K latent frames kept forever");
  app.add_option("--prompt-switch", g.prompt_switch,
                 "at a --prompt-schedule switch: refresh (new cross-attention only; past keys "
                 "stay encoded under the old prompt) | recache (LongLive's KV re-cache: re-run "
                 "the frames in the window under the new prompt; one extra forward per switch)");
  app.add_option("--num-rollout", g.num_rollout, "long video: rollouts (CausVid's long-video script)");
  app.add_option("--num-overlap-frames", g.num_overlap_frames,
                 "long video: latent frames re-used as start latents of the next rollout");
  app.add_option("--teacher-steps", g.teacher_steps, "teacher mode: Euler steps");
  add_optional(app, "--guidance-scale", g.guidance_scale, "teacher mode: CFG scale; default real_guidance_scale");
  app.add_option("--v2v-timestep", g.v2v_timestep,
                 "video-to-video: noise the input latents to this timestep (0..1000]");
  app.add_option("--fps", g.fps, "output frame rate");
  app.add_flag("--no-stream", g.no_stream,
               "write the mp4 to a temp file and rename at the end (default: streaming "
               "fragmented mp4, valid after every block)");
  app.add_option("--preview-scale", g.preview_scale, "no-VAE latent preview: pixels per latent");
  app.add_flag("--resize-image", g.resize_image, "i2v: stretch an image of another size (default: error)");
  app.add_flag("--no-vae", g.no_vae, "do not load the VAE: write latent previews (also vae_path: none)");
  app.add_option("--text-encoder", g.text_encoder,
                 "'' = prompt_cache or text_encoder_path from the config; 'hash' = "
                 "deterministic random embeddings (tests, toy world)");
  add_optional(app, "--seed", g.seed, "base seed (sample i uses seed + i); default the config's seed");
  app.add_flag("--quiet", g.quiet, "no progress bar");
  app.add_option("--codec", g.codec, "video encoder (falls back to mpeg4 when missing)");
  add_device_option(app, g.device);
  add_dtype_option(app, "--dtype", g.dtype,
                   "weights and compute: fp32 or bf16; '' = bf16 on CUDA, fp32 on CPU");
}

struct GenerateCommandArgs {
  inference::GenerateArgs gen;
  std::string prompt, prompts, prompt_schedule, out = "outputs/generate", image, video;
  std::string stream_raw, latents_out;
};

int run_generate(const GenerateCommandArgs& a) {
  auto setup = inference::build_generate_setup(a.gen);
  const auto& opts = setup.generator->options();
  const std::string& out = a.out;
  const std::string& schedule = a.prompt_schedule;
  std::vector<inference::SampleSpec> specs;
  std::vector<std::string> list;
  std::vector<inference::ScheduleEntry> sched;
  if (!schedule.empty()) {
    sched = inference::read_prompt_schedule(schedule);
    list.push_back(sched.front().prompt);
  }
  if (!a.prompt.empty()) list.push_back(a.prompt);
  if (!a.prompts.empty()) {
    auto l = data::read_prompt_file(a.prompts);
    list.insert(list.end(), l.begin(), l.end());
  }
  TORCH_CHECK(!list.empty(), "no prompt: pass --prompt, --prompts or --prompt-schedule");
  TORCH_CHECK((!a.prompt.empty()) + (!a.prompts.empty()) + (!schedule.empty()) == 1,
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
    s.raw_path = a.stream_raw;
    if (a.latents_out == "auto") s.latents_out = stem + ".latents.safetensors";
    else if (!a.latents_out.empty()) {
      TORCH_CHECK(list.size() == 1, "--latents-out PATH needs one prompt; use 'auto' for a batch");
      s.latents_out = a.latents_out;
    }
    s.image = a.image;
    s.video = a.video;
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

struct VbenchArgs {
  inference::GenerateArgs gen;
  std::string prompts, names_from, naming = "vbench", out = "outputs/vbench", summary;
  int samples = 5;
  int64_t limit = 0;
  bool metrics_only = false;
};

// This rank's items; a failed item is recorded (no file is left: writes are atomic) and the
// others go on; a rerun skips the complete ones and retries the rest.
std::vector<core::ItemFailure> generate_vbench(inference::VideoGenerator& gen,
                                               const std::vector<inference::VbenchItem>& items,
                                               const std::string& out,
                                               const core::DistContext& dist) {
  gen.options_mut().stream = false;  // atomic: temp file + rename, never a partial final file
  gen.options_mut().quiet = true;
  const auto& o = gen.options();
  const int64_t min_frames = o.num_rollout == 1 ? gen.pixel_frames_for(o.num_frames) : 1;
  auto mine = inference::split_for_rank(items, dist.rank(), dist.world_size());
  core::Progress bar(c10::str("vbench rank ", dist.rank()), static_cast<int64_t>(mine.size()));
  int64_t skipped = 0;
  std::vector<core::ItemFailure> failed;
  for (const auto& it : mine) {
    const std::string path = out + "/" + it.file;
    if (inference::video_complete(path, min_frames)) {
      ++skipped;
    } else {
      inference::SampleSpec s;
      s.prompt = it.prompt;
      s.seed = it.seed;
      s.out_path = path;
      try {
        gen.generate(s);
      } catch (const c10::Error& e) {
        failed.push_back({it.file, e.what_without_backtrace()});
      } catch (const std::exception& e) {
        failed.push_back({it.file, e.what()});
      }
    }
    bar.add(1, c10::str("(", skipped, " already done, ", failed.size(), " failed)"));
  }
  bar.finish();
  LOG_INFO("rank %d: %lld videos, %lld generated, %lld skipped (complete), %lld failed",
           dist.rank(), (long long)mine.size(),
           (long long)(mine.size() - skipped - failed.size()), (long long)skipped,
           (long long)failed.size());
  return failed;
}

int run_vbench(const VbenchArgs& a) {
  auto prompts = data::read_prompt_file(a.prompts);
  std::vector<std::string> names;
  if (!a.names_from.empty()) names = data::read_prompt_file(a.names_from);
  const int64_t limit = a.limit;
  if (limit > 0 && static_cast<int64_t>(prompts.size()) > limit) {
    prompts.resize(limit);
    if (!names.empty()) names.resize(std::min<size_t>(names.size(), limit));
  }
  core::DistOptions dopt;
  if (!a.metrics_only) dopt.device = inference::generate_device_spec(a.gen);  // chosen before the process group
  auto dist = core::DistContext::init_from_env(dopt);
  core::set_log_rank(dist->rank());
  const std::string& out = a.out;
  core::make_dirs(out);

  std::unique_ptr<inference::GenerateSetup> setup;
  int64_t seed = 0;
  if (!a.metrics_only) {
    setup = std::make_unique<inference::GenerateSetup>(
        inference::build_generate_setup(a.gen, dist->device()));
    seed = setup->seed;
  }
  const auto items = inference::vbench_items(prompts, names, a.samples, seed, a.naming);
  std::vector<core::ItemFailure> mine;
  if (setup) mine = generate_vbench(*setup->generator, items, out, *dist);
  // Collective (and the barrier before the metrics): every rank's generation failures.
  auto failed = core::report_failures(dist->world(), out, mine, "eval vbench");
  if (dist->is_main()) {
    auto j = inference::vbench_metrics(out, items);
    // Videos that could not be scored, and (metrics only) those missing, are failures too.
    std::vector<core::ItemFailure> more;
    for (const auto& f : j["failed"])
      more.push_back({f["file"].get<std::string>(), f["reason"].get<std::string>()});
    if (a.metrics_only)
      for (const auto& m : j["missing"]) more.push_back({m.get<std::string>(), "missing"});
    if (!more.empty()) {
      failed.insert(failed.end(), more.begin(), more.end());
      core::write_failures(out + "/" + core::kFailuresFile, failed);
      LOG_ERROR("eval vbench: %d videos missing or unreadable; the list is in %s/%s",
                more.size(), out, core::kFailuresFile);
    }
    j["prompts"] = a.prompts;
    j["samples_per_prompt"] = a.samples;
    const std::string path = a.summary.empty() ? out + "/causvid_vbench_summary.json" : a.summary;
    core::write_file_atomic(path, j.dump(2) + "\n");
    LOG_INFO("temporal_flickering %.6f over %lld videos (%zu missing)",
             j["temporal_flickering"]["score"].get<double>(),
             (long long)j["temporal_flickering"]["num_videos"].get<int64_t>(), j["missing"].size());
    std::printf("%s\n", path.c_str());
  }
  return failed.empty() ? 0 : 1;
}

void add_vbench_command(Commands& cmds, CLI::App* eval) {
  auto vb = std::make_shared<VbenchArgs>();
  CLI::App* app = cmds.add("vbench",
                           "VBench sampling (N videos per prompt, '<prompt>-<i>.mp4', 16 fps) with "
                           "a CausVid model, resumable and split over ranks; then C++ metrics.",
                           [vb] { return run_vbench(*vb); }, eval);
  add_generate_options(*app, vb->gen);
  app->add_option("--prompts", vb->prompts,
                  "prompt list, one per line (e.g. vbench_all_dimension.txt)")
      ->required();
  app->add_option("--names-from", vb->names_from,
                  "name the videos by this list instead (same line count; e.g. the short VBench "
                  "prompts when --prompts is the longer list)");
  app->add_option("--naming", vb->naming, "vbench: <prompt>-<i>.mp4 | index: NNNN-<i>.mp4")
      ->check(CLI::IsMember({"vbench", "index"}));
  app->add_option("--samples", vb->samples, "videos per prompt (VBench: 5; 25 for flickering)");
  app->add_option("--out", vb->out, "output directory");
  app->add_option("--limit", vb->limit, "only the first N prompts (0 = all)");
  app->add_flag("--metrics-only", vb->metrics_only, "skip generation; compute metrics on --out");
  app->add_option("--summary", vb->summary,
                  "JSON summary path; '' = <out>/causvid_vbench_summary.json");
}

}  // namespace

void add_generate_commands(Commands& cmds) {
  auto ga = std::make_shared<GenerateCommandArgs>();
  CLI::App* app = cmds.add(
      "generate",
      "Text (image, video) to video with a CausVid model: causal streaming, bidirectional or "
      "teacher sampling, long video, v2v, i2v, dynamic prompts.",
      [ga] { return run_generate(*ga); });
  add_generate_options(*app, ga->gen);
  app->add_option("--prompt", ga->prompt, "one prompt (or use --prompts / --prompt-schedule)");
  app->add_option("--prompts", ga->prompts, "file with one prompt per line: a batch");
  app->add_option("--prompt-schedule", ga->prompt_schedule,
                  "dynamic prompting: lines '<start block>: <prompt>' or '<seconds>s: <prompt>', "
                  "starting at 0, increasing");
  app->add_option("--out", ga->out,
                  "output .mp4 (one prompt) or directory (files NNNN-<prompt>.mp4)");
  app->add_option("--image", ga->image, "image-to-video: the first frame (PNG/JPEG/...)");
  app->add_option("--video", ga->video, "video-to-video (SDEdit): the input video");
  app->add_option("--stream-raw", ga->stream_raw,
                  "also write raw RGB24 frames as they are made ('-' = stdout, a FIFO, a file)");
  app->add_option("--latents-out", ga->latents_out,
                  "write the latents [F,C,h,w] as safetensors 'latents' (one prompt); in "
                  "directory mode <name>.latents.safetensors when set to 'auto'");

  CLI::App* eval = cmds.add_group(
      "eval", "evaluation: eval vbench (generate + C++ metrics) | eval toy (toy world metric)");
  add_vbench_command(cmds, eval);
  add_eval_toy_command(cmds, eval, "toy");
}

}  // namespace causvid::cli
