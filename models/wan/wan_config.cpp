// models/wan/wan_config.cpp: see wan_config.h.
#include "models/wan/wan_config.h"

#include <c10/util/Exception.h>

#include "models/wan/presets.h"

namespace causvid::models {

void WanConfig::validate() const {
  TORCH_CHECK(model_type == "t2v", "model_type: got '", model_type,
              "', want 't2v' (i2v/flf2v are not supported)");
  TORCH_CHECK(patch_size.size() == 3 && patch_size[0] > 0 && patch_size[1] > 0 &&
                  patch_size[2] > 0,
              "patch_size: want three positive integers");
  TORCH_CHECK(dim > 0 && num_heads > 0 && num_layers >= 0 && ffn_dim > 0 && freq_dim > 0 &&
                  text_dim > 0 && in_dim > 0 && out_dim > 0 && text_len > 0,
              "wan config: dimensions must be positive (dim ", dim, ", num_heads ", num_heads,
              ", num_layers ", num_layers, ", ffn_dim ", ffn_dim, ", freq_dim ", freq_dim, ")");
  TORCH_CHECK(dim % num_heads == 0, "dim: got ", dim, ", want a multiple of num_heads (",
              num_heads, ")");
  TORCH_CHECK(head_dim() % 2 == 0, "dim/num_heads: got ", head_dim(),
              ", want an even head dimension (RoPE pairs)");
  TORCH_CHECK(head_dim() / 2 >= 3, "dim/num_heads: got ", head_dim(), ", want at least 6");
  TORCH_CHECK(freq_dim % 2 == 0, "freq_dim: got ", freq_dim, ", want an even number");
  TORCH_CHECK(eps > 0, "eps: got ", eps, ", want > 0");
}

int64_t WanConfig::num_params() const {
  const int64_t d = dim;
  int64_t n = d * in_dim * patch_volume() + d;          // patch_embedding
  n += text_dim * d + d + d * d + d;                     // text_embedding
  n += freq_dim * d + d + d * d + d;                     // time_embedding
  n += 6 * d * d + 6 * d;                                // time_projection
  int64_t block = 6 * d;                                 // modulation
  block += 4 * (d * d + d) + (qk_norm ? 2 * d : 0);      // self_attn
  block += 4 * (d * d + d) + (qk_norm ? 2 * d : 0);      // cross_attn
  block += cross_attn_norm ? 2 * d : 0;                  // norm3
  block += d * ffn_dim + ffn_dim + ffn_dim * d + d;      // ffn
  n += num_layers * block;
  n += 2 * d + patch_volume() * out_dim * d + patch_volume() * out_dim;  // head
  return n;
}

WanConfig WanConfig::preset(const std::string& name) { return wan_preset(name); }

std::vector<std::string> WanConfig::preset_names() { return wan_preset_names(); }

WanConfig WanConfig::from_json(const nlohmann::json& j) {
  WanConfig c;
  c.model_type = j.value("model_type", c.model_type);
  if (j.contains("patch_size")) c.patch_size = j["patch_size"].get<std::vector<int64_t>>();
  c.text_len = j.value("text_len", c.text_len);
  c.in_dim = j.value("in_dim", c.in_dim);
  c.dim = j.value("dim", c.dim);
  c.ffn_dim = j.value("ffn_dim", c.ffn_dim);
  c.freq_dim = j.value("freq_dim", c.freq_dim);
  c.text_dim = j.value("text_dim", c.text_dim);
  c.out_dim = j.value("out_dim", c.out_dim);
  c.num_heads = j.value("num_heads", c.num_heads);
  c.num_layers = j.value("num_layers", c.num_layers);
  c.qk_norm = j.value("qk_norm", c.qk_norm);
  c.cross_attn_norm = j.value("cross_attn_norm", c.cross_attn_norm);
  c.eps = j.value("eps", c.eps);
  if (j.contains("window_size")) {
    auto w = j["window_size"].get<std::vector<int64_t>>();
    TORCH_CHECK(w.size() == 2 && w[0] == -1 && w[1] == -1,
                "window_size: only [-1, -1] (global attention) is supported");
  }
  c.validate();
  return c;
}

nlohmann::json WanConfig::to_json() const {
  return {{"model_type", model_type}, {"patch_size", patch_size}, {"text_len", text_len},
          {"in_dim", in_dim},         {"dim", dim},               {"ffn_dim", ffn_dim},
          {"freq_dim", freq_dim},     {"text_dim", text_dim},     {"out_dim", out_dim},
          {"num_heads", num_heads},   {"num_layers", num_layers}, {"window_size", {-1, -1}},
          {"qk_norm", qk_norm},       {"cross_attn_norm", cross_attn_norm}, {"eps", eps}};
}

}  // namespace causvid::models
