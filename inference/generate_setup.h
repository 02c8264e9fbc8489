// inference/generate_setup.h: the flags shared by `causvid generate`, `causvid eval vbench`
// (and usable by the benchmarks) that turn a CausVid YAML config + a checkpoint into a
// ready VideoGenerator: model architecture from the config (model_preset + model_* keys),
// generator weights, text conditioning (prompt cache, umT5, or "hash" for tests/toy), the
// VAE (or none: latent previews), and the sampling options with their config defaults.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/args.h"
#include "core/config.h"
#include "inference/generate.h"

namespace causvid::inference {

struct GenerateSetup {
  core::Config config;
  std::unique_ptr<VideoGenerator> generator;
  int64_t seed = 0;
};

// Registers the flags on `p` (call before p.parse); build() after parsing.
class GenerateFlags {
 public:
  explicit GenerateFlags(core::ArgParser& p);
  // device: where to run; undefined = resolve --device (or the config's `device`) for this
  // process's LOCAL_RANK. Multi-rank commands pass their DistContext's device.
  GenerateSetup build(std::optional<torch::Device> device = std::nullopt) const;
  // --device, or the config's `device` when the flag is not given (for DistOptions).
  std::string device_spec() const;

 private:
  std::string *config_, *checkpoint_, *which_, *random_init_, *mode_, *num_frames_, *height_,
      *width_, *steps_, *window_, *sink_, *rollout_, *overlap_, *teacher_steps_, *guidance_,
      *v2v_t_, *fps_, *no_stream_, *preview_scale_, *resize_image_, *no_vae_, *text_encoder_,
      *seed_, *quiet_, *codec_, *device_, *dtype_;
  std::vector<std::string>* set_;
};

}  // namespace causvid::inference
