// models/wan/presets.h: the named Wan DiT sizes (config key model_preset) and the one
// resolution of a run config's model keys (model_preset + model_* overrides) into a
// WanConfig. Sizes of Wan2.1-T2V-1.3B / -14B are the constructor arguments of CausVid's
// vendored Wan2.1 (causvid/models/wan/wan_base/modules/model.py WanModel.__init__).
//
//   models::WanConfig wc = models::wan_config(config);  // errors name the config key
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "models/wan/wan_config.h"

namespace causvid::models {

// "wan-1.3b" (Wan2.1-T2V-1.3B), "wan-14b" (Wan2.1-T2V-14B), "wan-mid" (the benchmark
// size), "tiny" (2 layers, dim 64, 4 latent channels, text_dim 48, text_len 16: the sizes
// of the golden loss fixtures), "toy" (the CPU toy world, docs/toy_world.md).
// Unknown names throw naming the key model_preset and the known names.
WanConfig wan_preset(const std::string& name);
std::vector<std::string> wan_preset_names();

// The config's preset with its model_* overrides applied, checked: every error names the
// config key (model_dim, model_num_heads, ..., image_or_video_shape) and config.source.
WanConfig wan_config(const core::Config& config);

// The real score's sizes: the generator's (wan_config), with the dim / ffn_dim / freq_dim /
// num_heads / num_layers of real_model_preset (or of real_name Wan2.1-T2V-14B / -1.3B, as
// Self-Forcing's real_name picks the teacher), then real_model_overrides. Text, in and out
// sizes stay the generator's (the scores read the same latents and text embeddings).
WanConfig real_score_config(const core::Config& config);

// Registers models' config check (the model sizes above) with core::register_config_check,
// so core::load_config rejects bad sizes before any device work. Called once at startup by
// the causvid main and the test main.
void register_builtins();

}  // namespace causvid::models
