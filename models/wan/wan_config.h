// models/wan/wan_config.h: hyper-parameters of Wan2.1's WanModel (t2v) and its causal
// variant (the presets are in presets.h). Ports the constructor arguments of
// causvid/models/wan/wan_base/modules/model.py WanModel.__init__ (CausVid's vendored Wan2.1).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace causvid::models {

struct WanConfig {
  std::string model_type = "t2v";
  std::vector<int64_t> patch_size = {1, 2, 2};
  int64_t text_len = 512;
  int64_t in_dim = 16;
  int64_t dim = 1536;
  int64_t ffn_dim = 8960;
  int64_t freq_dim = 256;
  int64_t text_dim = 4096;
  int64_t out_dim = 16;
  int64_t num_heads = 12;
  int64_t num_layers = 30;
  bool qk_norm = true;
  bool cross_attn_norm = true;
  double eps = 1e-6;

  int64_t head_dim() const { return dim / num_heads; }
  int64_t patch_volume() const { return patch_size[0] * patch_size[1] * patch_size[2]; }
  // Throws naming the field on inconsistent values (dim % heads, odd head_dim, ...).
  void validate() const;
  // Total parameter count (matches the reference state dict).
  int64_t num_params() const;

  // models::wan_preset / wan_preset_names (presets.h).
  static WanConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();
  // WanModel constructor kwargs as written in fixture meta.json "config".
  static WanConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

}  // namespace causvid::models
