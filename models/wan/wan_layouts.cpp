// models/wan/wan_layouts.cpp: see wan_layouts.h.
#include "models/wan/wan_layouts.h"

#include <filesystem>

#include "core/fs.h"

namespace causvid::models {

const KeyTable& diffusers_wan_dit_table() {
  static const KeyTable t("diffusers WanTransformer3DModel", {
      {"patch_embedding.{*}", "patch_embedding.{*}"},
      {"text_embedding.0.{*}", "condition_embedder.text_embedder.linear_1.{*}"},
      {"text_embedding.2.{*}", "condition_embedder.text_embedder.linear_2.{*}"},
      {"time_embedding.0.{*}", "condition_embedder.time_embedder.linear_1.{*}"},
      {"time_embedding.2.{*}", "condition_embedder.time_embedder.linear_2.{*}"},
      {"time_projection.1.{*}", "condition_embedder.time_proj.{*}"},
      {"head.modulation", "scale_shift_table"},
      {"head.head.{*}", "proj_out.{*}"},
      {"blocks.{i}.modulation", "blocks.{i}.scale_shift_table"},
      {"blocks.{i}.self_attn.q.{*}", "blocks.{i}.attn1.to_q.{*}"},
      {"blocks.{i}.self_attn.k.{*}", "blocks.{i}.attn1.to_k.{*}"},
      {"blocks.{i}.self_attn.v.{*}", "blocks.{i}.attn1.to_v.{*}"},
      {"blocks.{i}.self_attn.o.{*}", "blocks.{i}.attn1.to_out.0.{*}"},
      {"blocks.{i}.self_attn.norm_q.{*}", "blocks.{i}.attn1.norm_q.{*}"},
      {"blocks.{i}.self_attn.norm_k.{*}", "blocks.{i}.attn1.norm_k.{*}"},
      {"blocks.{i}.cross_attn.q.{*}", "blocks.{i}.attn2.to_q.{*}"},
      {"blocks.{i}.cross_attn.k.{*}", "blocks.{i}.attn2.to_k.{*}"},
      {"blocks.{i}.cross_attn.v.{*}", "blocks.{i}.attn2.to_v.{*}"},
      {"blocks.{i}.cross_attn.o.{*}", "blocks.{i}.attn2.to_out.0.{*}"},
      {"blocks.{i}.cross_attn.norm_q.{*}", "blocks.{i}.attn2.norm_q.{*}"},
      {"blocks.{i}.cross_attn.norm_k.{*}", "blocks.{i}.attn2.norm_k.{*}"},
      // Wan calls its norms norm1 (self), norm3 (cross), norm2 (ffn); diffusers in order of
      // use, so Wan's norm3 is diffusers' norm2 (norm1 and the ffn norm have no weights).
      {"blocks.{i}.norm3.{*}", "blocks.{i}.norm2.{*}"},
      {"blocks.{i}.ffn.0.{*}", "blocks.{i}.ffn.net.0.proj.{*}"},
      {"blocks.{i}.ffn.2.{*}", "blocks.{i}.ffn.net.2.{*}"},
  });
  return t;
}

namespace {

WanConfig wan_config_fields(const nlohmann::json& j) {
  TORCH_CHECK(j.is_object(), "want a JSON object, got ", j.type_name());
  auto get = [&](const char* k) -> const nlohmann::json& {
    TORCH_CHECK(j.contains(k) && !j[k].is_null(), "config field '", k, "' missing");
    return j[k];
  };
  // Each size is a positive integer <= 2^20, and dim <= 2^16, patch sizes <= 64: the
  // parameter counts (WanConfig::num_params) stay far inside int64.
  auto size = [&](const char* k) {
    const auto& v = get(k);
    TORCH_CHECK(v.is_number_integer() && v.get<int64_t>() > 0 && v.get<int64_t>() <= (1 << 20),
                "config field '", k, "' is ", v.dump().substr(0, 80),
                ", want a positive integer <= 1048576");
    return v.get<int64_t>();
  };
  if (j.contains("_class_name"))
    TORCH_CHECK(j["_class_name"] == "WanTransformer3DModel", "_class_name ",
                j["_class_name"].dump().substr(0, 80), ", want \"WanTransformer3DModel\"");
  for (const char* k : {"image_dim", "added_kv_proj_dim"})
    TORCH_CHECK(!j.contains(k) || j[k].is_null(), "config field '", k,
                "' is set: an image-conditioned (i2v / flf2v) transformer, but only the t2v "
                "WanModel is supported");
  WanConfig c;
  c.patch_size = get("patch_size").get<std::vector<int64_t>>();
  for (auto p : c.patch_size)
    TORCH_CHECK(p >= 1 && p <= 64, "config field 'patch_size' holds ", p, ", want 1..64");
  c.num_heads = size("num_attention_heads");
  c.dim = c.num_heads * size("attention_head_dim");  // both <= 2^20: no overflow
  TORCH_CHECK(c.dim <= 65536, "num_attention_heads x attention_head_dim = ", c.dim,
              ", want <= 65536");
  c.in_dim = size("in_channels");
  c.out_dim = size("out_channels");
  c.text_dim = size("text_dim");
  c.freq_dim = size("freq_dim");
  c.ffn_dim = size("ffn_dim");
  c.num_layers = size("num_layers");
  c.cross_attn_norm = get("cross_attn_norm").get<bool>();
  c.eps = get("eps").get<double>();
  const auto& qk = j.contains("qk_norm") ? j["qk_norm"] : nlohmann::json();
  TORCH_CHECK(qk.is_null() || qk == "rms_norm_across_heads", "qk_norm ",
              qk.dump().substr(0, 80), ", want \"rms_norm_across_heads\" (Wan's) or null");
  c.qk_norm = !qk.is_null();
  c.validate();
  return c;
}

}  // namespace

WanConfig wan_config_from_diffusers(const nlohmann::json& j, const std::string& source) {
  try {
    return wan_config_fields(j);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, source, ": ", e.what_without_backtrace());
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, source, ": ", e.what());
  }
}

nlohmann::json diffusers_config_from_wan(const WanConfig& c) {
  return {{"_class_name", "WanTransformer3DModel"},
          {"_diffusers_version", "0.33.0"},
          {"added_kv_proj_dim", nullptr},
          {"attention_head_dim", c.head_dim()},
          {"cross_attn_norm", c.cross_attn_norm},
          {"eps", c.eps},
          {"ffn_dim", c.ffn_dim},
          {"freq_dim", c.freq_dim},
          {"image_dim", nullptr},
          {"in_channels", c.in_dim},
          {"num_attention_heads", c.num_heads},
          {"num_layers", c.num_layers},
          {"out_channels", c.out_dim},
          {"patch_size", c.patch_size},
          {"qk_norm", c.qk_norm ? nlohmann::json("rms_norm_across_heads") : nlohmann::json()},
          {"rope_max_seq_len", 1024},
          {"text_dim", c.text_dim}};
}

const char* dit_layout_name(DitLayout l) {
  switch (l) {
    case DitLayout::kWan: return "wan";
    case DitLayout::kDiffusers: return "diffusers";
    case DitLayout::kComfyUI: return "comfyui";
  }
  return "?";
}

DitLayout parse_dit_layout(const std::string& name) {
  if (name == "wan") return DitLayout::kWan;
  if (name == "diffusers") return DitLayout::kDiffusers;
  if (name == "comfyui") return DitLayout::kComfyUI;
  TORCH_CHECK(false, "layout '", name, "': want wan | diffusers | comfyui");
}

namespace {

const std::string kComfyPrefix = "model.diffusion_model.";

bool is_fp8(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat8_e4m3fn || t.scalar_type() == torch::kFloat8_e5m2;
}

}  // namespace

DitLayout detect_dit_layout(const core::TensorMap& sd) {
  for (const auto& kv : sd)
    if (starts_with(kv.first, kComfyPrefix)) return DitLayout::kComfyUI;
  for (const auto& kv : sd)
    if (starts_with(kv.first, "condition_embedder.") || kv.first == "scale_shift_table" ||
        kv.first.find(".attn1.") != std::string::npos)
      return DitLayout::kDiffusers;
  return DitLayout::kWan;
}

core::TensorMap dequantize_fp8(const core::TensorMap& sd, const std::string& source) {
  const bool scaled = sd.count("scaled_fp8") > 0;
  core::TensorMap out;
  for (const auto& [k, t] : sd) {
    if (k == "scaled_fp8" || ends_with(k, ".scale_weight") || ends_with(k, ".scale_input"))
      continue;
    if (!is_fp8(t)) {
      out[k] = t;
      continue;
    }
    auto w = t.to(torch::kFloat32);
    const std::string scale_key =
        ends_with(k, ".weight") ? k.substr(0, k.size() - 7) + ".scale_weight" : "";
    auto it = scale_key.empty() ? sd.end() : sd.find(scale_key);
    if (it != sd.end()) {
      auto s = it->second.to(torch::kFloat32);
      if (s.numel() == 1) {
        w = w * s.reshape({});
      } else {
        TORCH_CHECK(w.dim() >= 1 && s.numel() == w.size(0), source, ": '", scale_key, "' has ",
                    s.numel(), " values, want 1 or one per output row (", w.size(0), ") of '",
                    k, "'");
        std::vector<int64_t> shape(w.dim(), 1);
        shape[0] = w.size(0);
        w = w * s.reshape(shape);
      }
    } else {
      TORCH_CHECK(!scaled, source, ": fp8 weight '", k, "' has no '", scale_key.empty() ? k + ".scale_weight" : scale_key,
                  "', which this scaled_fp8 file requires");
    }
    out[k] = w;
  }
  return out;
}

core::TensorMap wan_dit_to_ours(const core::TensorMap& sd, const std::string& source) {
  switch (detect_dit_layout(sd)) {
    case DitLayout::kComfyUI: {
      core::TensorMap sel;
      for (const auto& [k, t] : sd) {
        if (starts_with(k, kComfyPrefix)) sel[k.substr(kComfyPrefix.size())] = t;
        else if (k == "scaled_fp8") sel[k] = t;
      }
      return dequantize_fp8(sel, source);
    }
    case DitLayout::kDiffusers:
      return diffusers_wan_dit_table().to_ours(dequantize_fp8(sd, source), source);
    case DitLayout::kWan: return dequantize_fp8(sd, source);
  }
  return sd;
}

torch::ScalarType export_dtype(const std::string& name) {
  if (name == "bf16") return torch::kBFloat16;
  if (name == "fp16") return torch::kFloat16;
  if (name == "fp32") return torch::kFloat32;
  if (name == "fp8_e4m3fn" || name == "fp8_e4m3fn_scaled") return torch::kFloat8_e4m3fn;
  TORCH_CHECK(false, "--dtype '", name, "': want bf16 | fp16 | fp32 | fp8_e4m3fn | fp8_e4m3fn_scaled");
}

void save_diffusers_transformer(const std::string& dir, const core::TensorMap& sd,
                                const WanConfig& cfg, uint64_t max_shard_bytes) {
  auto theirs = diffusers_wan_dit_table().to_foreign(sd, dir);
  std::filesystem::create_directories(dir);
  // A folder exported before: its weights go first (the index before its shards), so what
  // is left after a crash below is a folder that does not load, never old and new mixed.
  namespace fs = std::filesystem;
  const std::string base = "diffusion_pytorch_model";
  fs::remove(fs::path(dir) / (base + ".safetensors.index.json"));
  fs::remove(fs::path(dir) / (base + ".safetensors"));
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto n = e.path().filename().string();
    if (n.rfind(base + "-", 0) == 0 && n.find("-of-") != std::string::npos) fs::remove(e.path());
  }
  core::write_file_atomic((std::filesystem::path(dir) / "config.json").string(),
                          diffusers_config_from_wan(cfg).dump(2));
  // The weights last (the index after its shards): a folder cut short does not load.
  core::save_sharded_safetensors(dir, "diffusion_pytorch_model", theirs, max_shard_bytes);
}

void save_comfyui_dit(const std::string& file, const core::TensorMap& sd, const std::string& dtype) {
  const auto dt = export_dtype(dtype);
  const bool fp8 = dt == torch::kFloat8_e4m3fn, scaled = dtype == "fp8_e4m3fn_scaled";
  core::TensorMap out;
  for (const auto& [k, t] : sd) {
    const bool quant = fp8 && starts_with(k, "blocks.") && ends_with(k, ".weight") && t.dim() == 2;
    if (!quant) {
      out[kComfyPrefix + k] = t.to(fp8 ? torch::kBFloat16 : dt);
      continue;
    }
    auto w = t.to(torch::kFloat32);
    if (scaled) {
      auto s = (w.abs().max() / 448.0).clamp_min(1e-12);
      out[kComfyPrefix + k.substr(0, k.size() - 7) + ".scale_weight"] = s.reshape({1});
      w = w / s;
    }
    out[kComfyPrefix + k] = w.to(torch::kFloat8_e4m3fn);
  }
  // ComfyUI keeps only the prefixed keys before it looks for the marker.
  if (scaled) out[kComfyPrefix + "scaled_fp8"] = torch::empty({0}, torch::kFloat8_e4m3fn);
  core::save_safetensors(file, out);
}

}  // namespace causvid::models
