// toy/eval_toy_main.cpp: `causvid eval toy`, the toy world's metric (toy/metric.h) on
//   (a) a latent file: --latents FILE.safetensors ("latents" [N, F, 4, H, W]) --prompts FILE
//   (b) real data:     --real --prompts FILE            (fresh videos of the toy world)
//   (c) a checkpoint:  --config CFG --checkpoint PATH --sampler teacher|bidirectional|causal
//                      [--steps N] [--guidance G] [--frames F] --prompts FILE
// The teacher samples with its N-step Euler sampler and CFG (inference/causal_pipeline.h
// sample_teacher, negative prompt = the config's); the stage-1 student with the config's
// denoising_step_list (sample_bidirectional); the causal student with the KV-cache
// CausalPipeline, --frames may be any multiple of num_frame_per_block (e.g. 4x for the
// rollout). The reference set for the Frechet distance is fresh real data for the same
// prompts. Prints one table row (stdout) and optionally writes JSON, the latents and previews.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/args.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "data/prompt_cache.h"
#include "inference/causal_pipeline.h"
#include "models/wan/flow_match.h"
#include "trainer/trainer.h"
#include "models/wan/wan_loader.h"
#include "toy/metric.h"
#include "toy/sampling.h"
#include "toy/text_encoder.h"

namespace causvid::cli {

using toy::SampleArgs;
using toy::sample_from_checkpoint;

int eval_toy_main(int argc, char** argv) {
  core::ArgParser p("causvid eval toy",
                    "Score toy-world videos (real, a latent file, or sampled from a checkpoint) "
                    "with the toy metric (docs/toy_world.md).");
  auto& prompts_f = p.flag("--prompts", "", "prompt file (one per line); the videos' prompts");
  auto& num_s = p.flag("--num", "0", "use the first N prompts (0 = all)");
  auto& latents_f = p.flag("--latents", "", "(a) safetensors with 'latents' [N, F, 4, H, W]");
  auto& real = p.toggle("--real", "(b) score fresh real videos of the prompts");
  auto& config = p.flag("--config", "", "(c) training config of the checkpoint");
  auto& sets = p.multi("--set", "config override key=value (repeatable)");
  auto& ckpt = p.flag("--checkpoint", "", "(c) weights: safetensors, model.pt or a checkpoint dir");
  auto& which = p.flag("--which", "generator", "(c) group in model.pt: generator | generator_ema | critic");
  auto& sampler = p.flag("--sampler", "", "(c) teacher | bidirectional | causal");
  auto& steps_s = p.flag("--steps", "50", "(c) teacher sampling steps");
  auto& guid_s = p.flag("--guidance", "", "(c) teacher CFG scale (\"\" = the config's real_guidance_scale)");
  auto& shift_s = p.flag("--shift", "", "(c) teacher sampling grid shift (\"\" = the config's timestep_shift)");
  auto& frames_s = p.flag("--frames", "0", "(b)(c) latent frames (0 = the config's / the world's)");
  auto& batch_s = p.flag("--batch", "16", "(c) videos per sampling batch");
  auto& seed_s = p.flag("--seed", "0", "noise seed (c) / start-position seed (b)");
  auto& device_s = p.flag("--device", "cpu", "(c) auto, cpu, cuda or cuda:N (noise is drawn on the CPU)");
  auto& speed_s = p.flag("--speed", "1", "the world's speed, pixels per frame");
  auto& corrupt_s = p.flag("--corrupt", "", "corrupt the set before scoring: static | colour | direction | blur | noisy | noise");
  auto& name = p.flag("--name", "", "row label (default: what was scored)");
  auto& json_f = p.flag("--json", "", "also write the scores as JSON here");
  auto& save_f = p.flag("--save-latents", "", "write the scored latents (safetensors) here");
  auto& png_f = p.flag("--preview", "", "write a PNG contact sheet of the first videos here");
  auto& mp4_f = p.flag("--mp4", "", "write an mp4 of the first video here");
  auto& header = p.toggle("--no-header", "print the row only");
  if (!p.parse(argc, argv)) return p.exit_code();

  TORCH_CHECK(!prompts_f.empty(), "--prompts: required (the prompt of each video)");
  auto prompts = data::read_prompt_file(prompts_f);
  const int64_t num = core::ArgParser::to_int("--num", num_s);
  if (num > 0 && num < static_cast<int64_t>(prompts.size())) prompts.resize(num);
  for (const auto& pr : prompts) toy::parse_prompt(pr);  // fail early on a foreign prompt
  const int modes = !latents_f.empty() + (real == "1") + !ckpt.empty();
  TORCH_CHECK(modes == 1, "give exactly one of --latents, --real, --checkpoint (got ", modes, ")");

  toy::WorldSpec spec;
  spec.speed = core::ArgParser::to_int("--speed", speed_s);
  const int64_t frames = core::ArgParser::to_int("--frames", frames_s);
  const int64_t seed = core::ArgParser::to_int("--seed", seed_s);
  torch::Tensor lat;
  std::string what;
  auto t0 = std::chrono::steady_clock::now();
  if (!latents_f.empty()) {
    auto m = core::load_safetensors(latents_f);
    TORCH_CHECK(m.count("latents"), latents_f, ": no tensor 'latents'");
    lat = m.at("latents").to(torch::kFloat32);
    TORCH_CHECK(lat.dim() == 5 && lat.size(2) == toy::kChannels, latents_f,
                ": 'latents' of shape ", lat.sizes(), ", want [N, F, 4, H, W]");
    if (num > 0 && lat.size(0) > num) lat = lat.narrow(0, 0, num);
    TORCH_CHECK(lat.size(0) == static_cast<int64_t>(prompts.size()), latents_f, ": ",
                lat.size(0), " videos for ", prompts.size(), " prompts in ", prompts_f,
                " (want one prompt per video; --num N scores the first N of both)");
    what = latents_f;
  } else if (real == "1") {
    lat = toy::generate_for_prompts(prompts, seed, spec, frames > 0 ? frames : spec.frames);
    what = "real";
  } else {
    SampleArgs a;
    a.config = config;
    a.sets = sets;
    a.checkpoint = ckpt;
    a.which = which;
    a.sampler = sampler;
    a.steps = core::ArgParser::to_int("--steps", steps_s);
    a.guidance = guid_s.empty() ? -1 : core::ArgParser::to_double("--guidance", guid_s);
    a.shift = shift_s.empty() ? 0 : core::ArgParser::to_double("--shift", shift_s);
    a.frames = frames;
    a.batch = core::ArgParser::to_int("--batch", batch_s);
    a.seed = seed;
    a.device = device_s;
    TORCH_CHECK(!config.empty(), "--config: required with --checkpoint");
    TORCH_CHECK(sampler == "teacher" || sampler == "bidirectional" || sampler == "causal",
                "--sampler: got '", sampler, "', want teacher, bidirectional or causal");
    TORCH_CHECK(a.steps >= 1, "--steps: got ", a.steps, ", want >= 1");
    TORCH_CHECK(a.batch >= 1, "--batch: got ", a.batch, ", want >= 1");
    lat = sample_from_checkpoint(a, prompts);
    what = sampler == "teacher" ? absl::StrFormat("teacher %d steps", a.steps) : sampler;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!corrupt_s.empty()) {
    lat = toy::corrupt(lat, corrupt_s, seed + 1);
    what += " +" + corrupt_s;
  }
  spec.height = lat.size(3);
  spec.width = lat.size(4);
  auto s = toy::evaluate(lat, prompts, spec);
  const std::string label = name.empty() ? what : name;
  if (header != "1") std::printf("%s\n", toy::set_score_header().c_str());
  std::printf("%s\n", toy::format_set_score(label, s).c_str());
  std::fflush(stdout);
  if (!json_f.empty()) {
    nlohmann::json j = {{"name", label},         {"num", s.num},
                        {"presence", s.presence}, {"sharpness", s.sharpness},
                        {"shape", s.shape},       {"colour", s.colour},
                        {"direction", s.direction}, {"motion", s.motion},
                        {"video_score", s.video_score}, {"fd", s.fd},
                        {"dist", s.dist},         {"overall", s.overall},
                        {"frames", lat.size(1)},  {"seconds", secs}};
    core::write_file_atomic(json_f, j.dump(2) + "\n");
  }
  if (!save_f.empty()) core::save_safetensors(save_f, {{"latents", lat.to(torch::kFloat16)}});
  if (!png_f.empty()) toy::write_preview_png(png_f, lat);
  if (!mp4_f.empty()) toy::write_preview_mp4(mp4_f, lat[0]);
  return 0;
}

}  // namespace causvid::cli
