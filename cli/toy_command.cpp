// cli/toy_command.cpp: `causvid toy data|eval|preview` (`toy run`: cli/toy_run_command.cpp),
// the CPU toy world's tools (toy/world.h).
//   causvid toy data --out DIR --num N --seed S    the training set:
//       DIR/latents_lmdb/      CausVid's array LMDB: "latents" [N, F, 4, H, W] float16 and
//                              "prompts" [N] (data/array_lmdb.h; what the diffusion stage
//                              reads, and what CausVid's Python reads)
//       DIR/train_prompts.txt  the N prompts in row order
//       DIR/eval_prompts.txt   every one of the 96 prompts once (same vocabulary; the eval
//                              set is in-distribution: the toy world tests distillation,
//                              not compositional generalisation)
//       DIR/world.json         the world's parameters; DIR/preview.png the first 8 videos
//     The output directory appears atomically (written as DIR.tmp.<pid>, then renamed).
//   causvid toy preview --latents FILE|--lmdb DIR --out PNG|MP4
//   causvid toy eval = causvid eval toy: the toy world's metric (toy/metric.h) on
//   (a) a latent file: --latents FILE.safetensors ("latents" [N, F, 4, H, W]) --prompts FILE
//   (b) real data:     --real --prompts FILE            (fresh videos of the toy world)
//   (c) a checkpoint:  --config CFG --checkpoint PATH --sampler teacher|bidirectional|causal|
//                      causal_teacher (a teacher_forcing checkpoint: N steps with CFG, KV cache)
//                      [--steps N] [--guidance G] [--frames F] --prompts FILE
// The teacher samples with its N-step Euler sampler and CFG (inference/causal_pipeline.h
// sample_teacher, negative prompt = the config's); the stage-1 student with the config's
// denoising_step_list (sample_bidirectional); the causal student with the KV-cache
// CausalPipeline, --frames may be any multiple of num_frame_per_block (e.g. 4x for the
// rollout). The reference set for the Frechet distance is fresh real data for the same
// prompts. Prints one table row (stdout) and optionally writes JSON, the latents and previews.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "data/array_lmdb.h"
#include "data/lmdb_verify.h"
#include "data/prompt_cache.h"
#include "toy/metric.h"
#include "toy/sampling.h"
#include "toy/world.h"

namespace causvid::cli {
namespace {

std::string join_lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

// Writes the set into `tmp` (a fresh directory).
void write_toy_data(const std::string& tmp, const toy::Dataset& d, const toy::WorldSpec& spec,
                    int64_t num, int64_t seed) {
  std::vector<std::string> eval_prompts;
  for (const auto& at : toy::all_attributes()) eval_prompts.push_back(toy::make_prompt(at));
  core::make_dirs(tmp);
  {
    data::ArrayLmdbWriter w(tmp + "/latents_lmdb");
    const int64_t chunk = 256;
    for (int64_t i = 0; i < num; i += chunk) {
      const int64_t n = std::min(chunk, num - i);
      w.put_tensor_rows("latents", i, d.latents.narrow(0, i, n));
      w.put_string_rows("prompts", i,
                        std::vector<std::string>(d.prompts.begin() + i, d.prompts.begin() + i + n));
    }
    auto s = d.latents.sizes();
    w.finish({{"latents", std::vector<int64_t>(s.begin(), s.end())}, {"prompts", {num}}});
  }
  core::write_file_atomic(tmp + "/train_prompts.txt", join_lines(d.prompts));
  core::write_file_atomic(tmp + "/eval_prompts.txt", join_lines(eval_prompts));
  nlohmann::json j = {{"format", "causvid-toy-world"}, {"version", 1},
                      {"num", num},       {"seed", seed},
                      {"frames", spec.frames}, {"channels", toy::kChannels},
                      {"height", spec.height}, {"width", spec.width},
                      {"speed", spec.speed},   {"align", spec.align}, {"wrap", !spec.wrap_free}, {"vocabulary", toy::vocabulary()},
                      {"latents_shape", std::vector<int64_t>(d.latents.sizes().begin(),
                                                             d.latents.sizes().end())}};
  core::write_file_atomic(tmp + "/world.json", j.dump(2) + "\n");
  toy::write_preview_png(tmp + "/preview.png", d.latents.narrow(0, 0, std::min<int64_t>(8, num)));
}

}  // namespace

int run_toy_data(const ToyDataArgs& a) {
  toy::WorldSpec spec;
  spec.frames = a.frames;
  spec.height = a.height;
  spec.width = a.width;
  spec.speed = a.speed;
  spec.align = a.align;
  spec.wrap_free = !a.wrap;
  TORCH_CHECK(spec.align >= 1 && spec.height % spec.align == 0 && spec.width % spec.align == 0,
              "--align: got ", spec.align, ", want a divisor of --height and --width");
  const int64_t num = a.num, seed = a.seed;
  const std::string& out = a.out;
  TORCH_CHECK(spec.frames >= 3 && spec.frames % 3 == 0, "--frames: got ", spec.frames,
              ", want a positive multiple of 3 (causal blocks of 3 latent frames)");
  TORCH_CHECK(spec.height >= 8 && spec.height % 2 == 0, "--height: got ", spec.height,
              ", want an even number >= 8");
  TORCH_CHECK(spec.width >= 8 && spec.width % 2 == 0, "--width: got ", spec.width,
              ", want an even number >= 8");
  TORCH_CHECK(spec.speed >= 1 && 2 * spec.speed < std::min(spec.height, spec.width), "--speed: got ",
              spec.speed, ", want 1 .. ", (std::min(spec.height, spec.width) - 1) / 2);
  TORCH_CHECK(num >= 1, "--num: got ", num, ", want >= 1");
  namespace fs = std::filesystem;
  std::error_code ec;
  TORCH_CHECK(a.overwrite || !fs::exists(out, ec), out,
              ": already exists (pass --overwrite to replace it)");

  auto d = toy::generate(num, static_cast<uint64_t>(seed), spec);
  fs::path outp(out);
  if (!outp.parent_path().empty()) core::make_dirs(outp.parent_path().string());
  const std::string tmp = out + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  try {
    write_toy_data(tmp, d, spec, num, seed);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  if (fs::exists(out, ec)) fs::remove_all(out);
  fs::rename(tmp, out);
  LOG_INFO("toy data: %d videos [%d, 4, %d, %d] (%d tokens each with patch 1x2x2)", num,
           spec.frames, spec.height, spec.width, spec.frames * spec.height * spec.width / 4);
  std::printf("%s/latents_lmdb\n", out.c_str());
  return 0;
}

namespace {

struct ToyPreviewArgs {
  std::string latents, lmdb, out;
  int64_t num = 8, scale = 8;
};

int run_toy_preview(const ToyPreviewArgs& a) {
  TORCH_CHECK(a.latents.empty() != a.lmdb.empty(), "give exactly one of --latents, --lmdb");
  const int64_t num = a.num, scale = a.scale;
  const std::string& out = a.out;
  torch::Tensor lat;
  if (!a.latents.empty()) {
    auto m = core::load_safetensors(a.latents);
    TORCH_CHECK(m.count("latents"), a.latents, ": no tensor 'latents'");
    lat = m.at("latents").to(torch::kFloat32);
  } else {
    data::check_array_lmdb(a.lmdb);  // a corrupt file: an error naming it, not a signal
    data::ArrayLmdb db(a.lmdb);
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < std::min(num, db.rows("latents")); ++i) rows.push_back(db.tensor_row("latents", i));
    lat = torch::stack(rows, 0);
  }
  if (lat.dim() == 4) lat = lat.unsqueeze(0);
  const bool mp4 = out.size() > 4 && out.compare(out.size() - 4, 4, ".mp4") == 0;
  if (mp4)
    toy::write_preview_mp4(out, lat[0], scale);
  else
    toy::write_preview_png(out, lat, scale, num);
  std::printf("%s\n", out.c_str());
  return 0;
}

struct EvalToyArgs {
  std::string prompts, latents, checkpoint, which = "generator", sampler, device = "cpu";
  std::string corrupt, name, json, save_latents, preview, mp4;
  ConfigArgs config;
  int64_t num = 0, steps = 50, frames = 0, batch = 16, seed = 0, speed = toy::WorldSpec{}.speed;
  bool wrap = !toy::WorldSpec{}.wrap_free;
  int64_t window = -1, sink = 0;
  std::optional<double> guidance, shift;
  bool real = false, no_header = false;
};

torch::Tensor load_or_sample(const EvalToyArgs& a, const std::vector<std::string>& prompts,
                             const toy::WorldSpec& spec, std::string* what_out) {
  torch::Tensor lat;
  std::string& what = *what_out;
  if (!a.latents.empty()) {
    const std::string& latents_f = a.latents;
    auto m = core::load_safetensors(latents_f);
    TORCH_CHECK(m.count("latents"), latents_f, ": no tensor 'latents'");
    lat = m.at("latents").to(torch::kFloat32);
    TORCH_CHECK(lat.dim() == 5 && lat.size(2) == toy::kChannels, latents_f,
                ": 'latents' of shape ", lat.sizes(), ", want [N, F, 4, H, W]");
    if (a.num > 0 && lat.size(0) > a.num) lat = lat.narrow(0, 0, a.num);
    TORCH_CHECK(lat.size(0) == static_cast<int64_t>(prompts.size()), latents_f, ": ",
                lat.size(0), " videos for ", prompts.size(), " prompts in ", a.prompts,
                " (want one prompt per video; --num N scores the first N of both)");
    what = latents_f;
  } else if (a.real) {
    lat = toy::generate_for_prompts(prompts, a.seed, spec, a.frames > 0 ? a.frames : spec.frames);
    what = "real";
  } else {
    toy::SampleArgs s;
    s.config = a.config.path;
    s.sets = a.config.sets;
    s.checkpoint = a.checkpoint;
    s.which = a.which;
    s.sampler = a.sampler;
    s.steps = a.steps;
    s.guidance = a.guidance.value_or(-1);
    s.shift = a.shift.value_or(0);
    s.frames = a.frames;
    s.window_frames = a.window;
    s.sink_frames = a.sink;
    s.batch = a.batch;
    s.seed = a.seed;
    s.device = a.device;
    TORCH_CHECK(!a.config.path.empty(), "--config: required with --checkpoint");
    TORCH_CHECK(a.sampler == "teacher" || a.sampler == "bidirectional" || a.sampler == "causal" ||
                    a.sampler == "causal_teacher",
                "--sampler: got '", a.sampler,
                "', want teacher, bidirectional, causal or causal_teacher");
    lat = toy::sample_from_checkpoint(s, prompts);
    what = a.sampler == "teacher" ? absl::StrFormat("teacher %d steps", s.steps) : a.sampler;
  }
  return lat;
}

int run_eval_toy(const EvalToyArgs& a) {
  auto prompts = data::read_prompt_file(a.prompts);
  const int64_t num = a.num;
  if (num > 0 && num < static_cast<int64_t>(prompts.size())) prompts.resize(num);
  for (const auto& pr : prompts) toy::parse_prompt(pr);  // fail early on a foreign prompt
  const int modes = !a.latents.empty() + a.real + !a.checkpoint.empty();
  TORCH_CHECK(modes == 1, "give exactly one of --latents, --real, --checkpoint (got ", modes, ")");

  toy::WorldSpec spec;
  spec.speed = a.speed;
  spec.wrap_free = !a.wrap;
  auto t0 = std::chrono::steady_clock::now();
  std::string what;
  torch::Tensor lat = load_or_sample(a, prompts, spec, &what);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!a.corrupt.empty()) {
    lat = toy::corrupt(lat, a.corrupt, a.seed + 1);
    what += " +" + a.corrupt;
  }
  spec.height = lat.size(3);
  spec.width = lat.size(4);
  auto s = toy::evaluate(lat, prompts, spec);
  const std::string label = a.name.empty() ? what : a.name;
  if (!a.no_header) std::printf("%s\n", toy::set_score_header().c_str());
  std::printf("%s\n", toy::format_set_score(label, s).c_str());
  std::fflush(stdout);
  if (!a.json.empty()) {
    nlohmann::json j = {{"name", label},         {"num", s.num},
                        {"presence", s.presence}, {"sharpness", s.sharpness},
                        {"shape", s.shape},       {"colour", s.colour},
                        {"direction", s.direction}, {"axis", s.axis}, {"motion", s.motion},
                        {"video_score", s.video_score}, {"fd", s.fd},
                        {"dist", s.dist},         {"overall", s.overall},
                        {"frames", lat.size(1)},  {"seconds", secs}};
    core::write_file_atomic(a.json, j.dump(2) + "\n");
  }
  if (!a.save_latents.empty()) core::save_safetensors(a.save_latents, {{"latents", lat.to(torch::kFloat16)}});
  if (!a.preview.empty()) toy::write_preview_png(a.preview, lat);
  if (!a.mp4.empty()) toy::write_preview_mp4(a.mp4, lat[0]);
  return 0;
}

void add_toy_data_command(Commands& cmds, CLI::App* toy) {
  auto d = std::make_shared<ToyDataArgs>();
  CLI::App* app = cmds.add("data", "Write the toy world's training set (LMDB + prompt files).",
                           [d] { return run_toy_data(*d); }, toy);
  app->add_option("--out", d->out, "output directory (must not exist unless --overwrite)")
      ->required();
  app->add_option("--num", d->num, "number of videos");
  add_seed_option(*app, d->seed, "seed (prompt order and start positions)");
  app->add_option("--frames", d->frames, "latent frames (a multiple of 3)");
  app->add_option("--height", d->height, "latent height (even)");
  app->add_option("--width", d->width, "latent width (even)");
  app->add_option("--speed", d->speed, "pixels per frame");
  app->add_option("--align", d->align, "start positions are multiples of this (2: on the patch grid)");
  app->add_flag("--wrap,!--no-wrap", d->wrap,
                "start positions anywhere on the torus, clips wrap around the edges (the default); "
                "--no-wrap: the whole clip inside the frame");
  add_overwrite_flag(*app, d->overwrite, "replace an existing output directory");
}

void add_toy_preview_command(Commands& cmds, CLI::App* toy) {
  auto p = std::make_shared<ToyPreviewArgs>();
  CLI::App* app = cmds.add("preview", "Show toy latents as a PNG contact sheet or an mp4.",
                           [p] { return run_toy_preview(*p); }, toy);
  app->add_option("--latents", p->latents, "safetensors with 'latents' [N, F, 4, H, W]");
  app->add_option("--lmdb", p->lmdb, "or a toy LMDB (array 'latents')");
  app->add_option("--out", p->out, "output .png (contact sheet) or .mp4 (first video)")->required();
  app->add_option("--num", p->num, "videos shown in the contact sheet");
  app->add_option("--scale", p->scale, "pixels per latent pixel");
}

}  // namespace

void add_eval_toy_command(Commands& cmds, CLI::App* parent, const std::string& name) {
  auto e = std::make_shared<EvalToyArgs>();
  CLI::App* app = cmds.add(name,
                           "Score toy-world videos (real, a latent file, or sampled from a "
                           "checkpoint) with the toy metric (docs/toy_world.md).",
                           [e] { return run_eval_toy(*e); }, parent);
  app->add_option("--prompts", e->prompts, "prompt file (one per line); the videos' prompts")
      ->required();
  app->add_option("--num", e->num, "use the first N prompts (0 = all)");
  app->add_option("--latents", e->latents, "(a) safetensors with 'latents' [N, F, 4, H, W]");
  app->add_flag("--real", e->real, "(b) score fresh real videos of the prompts");
  add_config_options(*app, e->config, "(c) training config of the checkpoint",
                     "config override key=value (repeatable)");
  app->add_option("--checkpoint", e->checkpoint,
                  "(c) weights: safetensors, model.pt or a checkpoint dir");
  app->add_option("--which", e->which, "(c) group in model.pt: generator | generator_ema | critic");
  app->add_option("--sampler", e->sampler,
                  "(c) teacher | bidirectional | causal | causal_teacher (a teacher_forcing "
                  "checkpoint: --steps with CFG, block by block with the KV cache)")
      ->check(CLI::IsMember({"teacher", "bidirectional", "causal", "causal_teacher"}));
  app->add_option("--steps", e->steps, "(c) teacher sampling steps")->check(CLI::PositiveNumber);
  add_optional(*app, "--guidance", e->guidance,
               "(c) teacher CFG scale (default: the config's real_guidance_scale)");
  add_optional(*app, "--shift", e->shift,
               "(c) teacher sampling grid shift (default: the config's scheduler_shift)");
  app->add_option("--frames", e->frames, "(b)(c) latent frames (0 = the config's / the world's)");
  app->add_option("--window", e->window,
                  "(c) causal sampler: rolling KV cache of this many latent frames (-1: all)");
  app->add_option("--sink", e->sink, "(c) causal sampler: sink frames the rolling cache keeps");
  app->add_option("--batch", e->batch, "(c) videos per sampling batch")->check(CLI::PositiveNumber);
  add_seed_option(*app, e->seed, "noise seed (c) / start-position seed (b)");
  add_device_option(*app, e->device, "(c) auto, cpu, cuda or cuda:N (noise is drawn on the CPU)");
  app->add_option("--speed", e->speed, "the world's speed, pixels per frame");
  app->add_flag("--wrap,!--no-wrap", e->wrap,
                "the real reference videos start anywhere on the torus (the default; --no-wrap as "
                "toy data --no-wrap)");
  app->add_option("--corrupt", e->corrupt,
                  "corrupt the set before scoring: static | colour | direction | blur | noisy | "
                  "noise");
  app->add_option("--name", e->name, "row label (default: what was scored)");
  app->add_option("--json", e->json, "also write the scores as JSON here");
  app->add_option("--save-latents", e->save_latents, "write the scored latents (safetensors) here");
  app->add_option("--preview", e->preview, "write a PNG contact sheet of the first videos here");
  app->add_option("--mp4", e->mp4, "write an mp4 of the first video here");
  app->add_flag("--no-header", e->no_header, "print the row only");
}

void add_toy_commands(Commands& cmds) {
  CLI::App* toy =
      cmds.add_group("toy", "the CPU toy world: toy run | data | eval | preview | probe");
  add_toy_run_command(cmds, toy);
  add_toy_data_command(cmds, toy);
  add_eval_toy_command(cmds, toy, "eval");
  add_toy_preview_command(cmds, toy);
  add_toy_probe_command(cmds, toy);
}

}  // namespace causvid::cli
