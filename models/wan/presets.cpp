// models/wan/presets.cpp: see presets.h. Moved here from core/config.cpp, which now keeps
// only the preset name and the override keys.
#include "models/wan/presets.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <utility>

namespace causvid::models {
namespace {

struct Preset {
  const char* name;
  int64_t dim, ffn_dim, freq_dim, num_heads, num_layers, in_dim, out_dim, text_dim, text_len;
};

// Data table: patch size (1, 2, 2) and eps 1e-6 for all.
const Preset kPresets[] = {
    // name        dim   ffn    freq heads layers in out text_dim text_len
    {"wan-1.3b", 1536, 8960, 256, 12, 30, 16, 16, 4096, 512},  // Wan2.1-T2V-1.3B
    {"wan-14b", 5120, 13824, 256, 40, 40, 16, 16, 4096, 512},  // Wan2.1-T2V-14B
    {"wan-mid", 512, 2048, 256, 8, 4, 16, 16, 4096, 512},      // benchmark size
    {"tiny", 64, 128, 32, 2, 2, 4, 4, 48, 16},                 // golden loss fixtures
    {"toy", 64, 256, 64, 2, 4, 4, 4, 64, 16},                  // CPU toy world
};

std::string joined_names() {
  std::string s;
  for (const auto& n : wan_preset_names()) s += (s.empty() ? "" : " | ") + n;
  return s;
}

std::string list_str(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Preset + overrides, unchecked.
WanConfig resolve(const core::Config& c) {
  WanConfig w = wan_preset(c.model_preset);
  if (c.model_dim) w.dim = *c.model_dim;
  if (c.model_ffn_dim) w.ffn_dim = *c.model_ffn_dim;
  if (c.model_freq_dim) w.freq_dim = *c.model_freq_dim;
  if (c.model_num_heads) w.num_heads = *c.model_num_heads;
  if (c.model_num_layers) w.num_layers = *c.model_num_layers;
  if (c.model_in_dim) w.in_dim = *c.model_in_dim;
  if (c.model_out_dim) w.out_dim = *c.model_out_dim;
  if (c.model_text_dim) w.text_dim = *c.model_text_dim;
  if (c.model_text_len) w.text_len = *c.model_text_len;
  return w;
}

void check_sizes(const core::Config& c, const WanConfig& d) {
  const std::string& src = c.source;
  for (const auto& [key, v] : std::vector<std::pair<const char*, int64_t>>{
           {"model_dim", d.dim},
           {"model_ffn_dim", d.ffn_dim},
           {"model_freq_dim", d.freq_dim},
           {"model_num_heads", d.num_heads},
           {"model_num_layers", d.num_layers},
           {"model_in_dim", d.in_dim},
           {"model_out_dim", d.out_dim},
           {"model_text_dim", d.text_dim},
           {"model_text_len", d.text_len}})
    TORCH_CHECK(v >= 1, src, ": key '", key, "': got ", v, ", want >= 1");
  TORCH_CHECK(d.dim % d.num_heads == 0, src, ": key 'model_dim': got ", d.dim,
              ", want a multiple of model_num_heads (", d.num_heads, ")");
  // Wan's 3D RoPE splits each head into (t, h, w) parts of even size.
  TORCH_CHECK(d.head_dim() % 2 == 0, src, ": keys 'model_dim'/'model_num_heads': head dim ",
              d.dim, "/", d.num_heads, " = ", d.head_dim(), ", want an even number");
  TORCH_CHECK(d.freq_dim % 2 == 0, src, ": key 'model_freq_dim': got ", d.freq_dim,
              ", want an even number (sinusoidal embedding)");
}

// The latent shape [B, F, C, H, W] against the model (core checks the rest of it).
void check_latent_shape(const core::Config& c, const WanConfig& d) {
  const auto& shape = c.image_or_video_shape;
  if (shape.size() != 5) return;
  TORCH_CHECK(shape[2] == d.in_dim, c.source, ": key 'image_or_video_shape': got C = ",
              shape[2], " in ", list_str(shape), ", want the model's in_dim ", d.in_dim,
              " (model_preset ", c.model_preset, " / model_in_dim)");
  TORCH_CHECK(shape[1] % d.patch_size[0] == 0 && shape[3] % d.patch_size[1] == 0 &&
                  shape[4] % d.patch_size[2] == 0,
              c.source, ": key 'image_or_video_shape': got F, H, W = ", shape[1], ", ",
              shape[3], ", ", shape[4], ", want multiples of the patch size (",
              d.patch_size[0], ", ", d.patch_size[1], ", ", d.patch_size[2], ")");
}

}  // namespace

WanConfig wan_preset(const std::string& name) {
  const Preset* found = nullptr;
  for (const auto& p : kPresets)
    if (name == p.name) found = &p;
  TORCH_CHECK(found, "key 'model_preset': got '", name, "', want ", joined_names());
  const Preset& p = *found;
  WanConfig w;
  w.dim = p.dim;
  w.ffn_dim = p.ffn_dim;
  w.freq_dim = p.freq_dim;
  w.num_heads = p.num_heads;
  w.num_layers = p.num_layers;
  w.in_dim = p.in_dim;
  w.out_dim = p.out_dim;
  w.text_dim = p.text_dim;
  w.text_len = p.text_len;
  return w;
}

std::vector<std::string> wan_preset_names() {
  std::vector<std::string> names;
  for (const auto& p : kPresets) names.emplace_back(p.name);
  return names;
}

WanConfig wan_config(const core::Config& config) {
  const auto names = wan_preset_names();
  TORCH_CHECK(std::find(names.begin(), names.end(), config.model_preset) != names.end(),
              config.source, ": key 'model_preset': got '", config.model_preset, "', want ",
              joined_names());
  WanConfig w = resolve(config);
  check_sizes(config, w);
  check_latent_shape(config, w);
  w.validate();
  return w;
}

WanConfig real_score_config(const core::Config& config) {
  WanConfig w = wan_config(config);
  std::string preset = config.real_model_preset;
  if (preset.empty() && config.real_name_is_release())
    preset = config.real_name == "Wan2.1-T2V-14B" ? "wan-14b" : "wan-1.3b";
  if (!preset.empty()) {
    const auto names = wan_preset_names();
    TORCH_CHECK(std::find(names.begin(), names.end(), preset) != names.end(), config.source,
                ": key 'real_model_preset': got '", preset, "', want ", joined_names());
    const WanConfig p = wan_preset(preset);
    w.dim = p.dim;
    w.ffn_dim = p.ffn_dim;
    w.freq_dim = p.freq_dim;
    w.num_heads = p.num_heads;
    w.num_layers = p.num_layers;
  }
  for (const auto& [k, v] : config.real_model_overrides) {
    TORCH_CHECK(v > 0, config.source, ": key 'real_model_overrides': ", k, " = ", v,
                ", want > 0");
    if (k == "dim") w.dim = v;
    else if (k == "ffn_dim") w.ffn_dim = v;
    else if (k == "freq_dim") w.freq_dim = v;
    else if (k == "num_heads") w.num_heads = v;
    else if (k == "num_layers") w.num_layers = v;
  }
  TORCH_CHECK(w.num_heads > 0 && w.dim % w.num_heads == 0 && (w.dim / w.num_heads) % 2 == 0,
              config.source, ": keys 'real_model_preset' / 'real_model_overrides': dim ", w.dim,
              " with ", w.num_heads, " heads, want an even head dim");
  w.validate();
  return w;
}

void register_builtins() {
  core::register_config_check("model sizes", [](const core::Config& c) {
    wan_config(c);
    if (c.is_dmd()) real_score_config(c);
  });
}

}  // namespace causvid::models

