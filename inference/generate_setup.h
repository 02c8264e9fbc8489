// inference/generate_setup.h: the settings shared by `causvid generate` and `causvid eval
// vbench` (flags registered in cli/generate_command.cpp) that turn a CausVid YAML config + a checkpoint into a
// ready VideoGenerator: model architecture from the config (model_preset + model_* keys),
// generator weights, text conditioning (prompt cache, umT5, or "hash" for tests/toy), the
// VAE (or none: latent previews), and the sampling options with their config defaults.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "inference/generate.h"

namespace causvid::inference {

struct GenerateSetup {
  core::Config config;
  std::unique_ptr<VideoGenerator> generator;
  int64_t seed = 0;
};

// The command-line settings; unset optionals and empty strings take the config's value.
struct GenerateArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string checkpoint, which = "generator";
  std::vector<std::string> loras;  // --lora FILE[:SCALE], merged into the weights in order
  std::optional<int64_t> random_init;  // a seed: random weights instead of a checkpoint
  std::string mode;
  std::optional<int64_t> num_frames, height, width;
  std::vector<double> denoising_steps;
  // window_frames kConfigWindow = the config's attention window (long_window, LongLive's
  // local_attn_size) if it has one, else the full cache (-1).
  static constexpr int64_t kConfigWindow = -2;
  int64_t window_frames = kConfigWindow, sink_frames = 0, num_rollout = 1, num_overlap_frames = 3;
  std::string prompt_switch = "refresh";  // "refresh" | "recache" (GenerateOptions::recache)
  int64_t teacher_steps = 50, preview_scale = 8;
  std::optional<double> guidance_scale;
  double v2v_timestep = 757, fps = 16;
  bool no_stream = false, resize_image = false, no_vae = false, quiet = false;
  std::string text_encoder;
  std::optional<int64_t> seed;
  std::string codec = "libx264", device, dtype;
};

// device: where to run; undefined = resolve --device (or the config's `device`) for this
// process's LOCAL_RANK. Multi-rank commands pass their DistContext's device.
GenerateSetup build_generate_setup(const GenerateArgs& a,
                                   std::optional<torch::Device> device = std::nullopt);
// --device, or the config's `device` when the flag is not given (for DistOptions).
std::string generate_device_spec(const GenerateArgs& a);

}  // namespace causvid::inference
