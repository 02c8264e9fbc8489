// trainer/model_export.cpp: see model_export.h.
#include "trainer/model_export.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "core/tensor_io.h"
#include "models/wan/wan_layouts.h"
#include "models/t5/t5_layouts.h"
#include "models/t5/umt5.h"
#include "models/vae/vae_layouts.h"
#include "models/wan/wan_loader.h"

namespace causvid::trainer {

models::WanConfig infer_wan_config(const core::TensorMap& sd, int64_t num_heads) {
  auto at = [&](const std::string& k) {
    auto it = sd.find(k);
    TORCH_CHECK(it != sd.end(), "export: the weights lack '", k, "' (not a Wan DiT?)");
    return it->second;
  };
  models::WanConfig c;
  auto pe = at("patch_embedding.weight");  // [D, C_in, pt, ph, pw]
  TORCH_CHECK(pe.dim() == 5, "export: patch_embedding.weight ", pe.sizes(), ", want 5-D");
  c.dim = pe.size(0);
  c.in_dim = pe.size(1);
  c.patch_size = {pe.size(2), pe.size(3), pe.size(4)};
  c.text_dim = at("text_embedding.0.weight").size(1);
  c.freq_dim = at("time_embedding.0.weight").size(1);
  c.ffn_dim = at("blocks.0.ffn.0.weight").size(0);
  c.out_dim = at("head.head.weight").size(0) / c.patch_volume();
  c.num_layers = 0;
  while (sd.count("blocks." + std::to_string(c.num_layers) + ".modulation")) ++c.num_layers;
  c.qk_norm = sd.count("blocks.0.self_attn.norm_q.weight") > 0;
  c.cross_attn_norm = sd.count("blocks.0.norm3.weight") > 0;
  c.num_heads = num_heads > 0 ? num_heads : c.dim / 128;
  TORCH_CHECK(c.num_heads > 0 && c.dim % c.num_heads == 0, "export: dim ", c.dim,
              " does not split into heads of 128; give --num-heads");
  c.validate();
  return c;
}

namespace {

core::TensorMap cast(const core::TensorMap& sd, const std::string& dtype) {
  if (dtype.empty()) return sd;
  const auto dt = models::export_dtype(dtype);
  TORCH_CHECK(dt != torch::kFloat8_e4m3fn, "--dtype ", dtype, ": fp8 is written by --format "
              "comfyui only");
  core::TensorMap out;
  for (const auto& [k, t] : sd) out[k] = t.is_floating_point() ? t.to(dt) : t;
  return out;
}

// CausVid's model.pt: the generator ("model." keys) and, from a checkpoint, its critic.
void save_causvid(const std::string& src, const std::string& out, const core::TensorMap& gen,
                  const std::string& dtype) {
  core::TensorMap g, critic;
  for (const auto& [k, t] : cast(gen, dtype)) g["model." + k] = t.contiguous();
  const auto file = src.empty() ? "" : models::resolve_weight_file(src);
  if (!file.empty() && core::detect_weight_format(file) == core::WeightFormat::kTorchZip)
    for (const auto& [k, t] : core::load_weights(file))
      if (k.rfind("critic.", 0) == 0) critic[k.substr(7)] = t.contiguous();
  std::vector<std::pair<std::string, c10::IValue>> items;
  items.push_back({"generator", core::tensor_dict(g)});
  if (!critic.empty()) items.push_back({"critic", core::tensor_dict(cast(critic, dtype))});
  core::save_torch_checkpoint(out, core::nested_dict(items));
}

}  // namespace

namespace {

// The tokenizer files of `src` (a tokenizer folder, a pipeline folder holding tokenizer/, or a
// spiece.model file) copied into `dir`.
void copy_tokenizer(const std::string& src, const std::string& dir) {
  namespace fs = std::filesystem;
  fs::path from = src;
  if (fs::is_directory(from) && !fs::exists(from / "spiece.model") && fs::is_directory(from / "tokenizer"))
    from /= "tokenizer";
  fs::create_directories(dir);
  if (!fs::is_directory(from)) {
    TORCH_CHECK(fs::is_regular_file(from), "--tokenizer: ", src, " does not exist");
    fs::copy_file(from, fs::path(dir) / "spiece.model", fs::copy_options::overwrite_existing);
    core::write_file_atomic((fs::path(dir) / "tokenizer_config.json").string(),
                            R"({"tokenizer_class": "T5Tokenizer", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "extra_ids": 0, "legacy": true})");
    return;
  }
  TORCH_CHECK(fs::exists(from / "spiece.model"), "--tokenizer: ", from.string(),
              " holds no spiece.model");
  for (const char* f : {"spiece.model", "tokenizer_config.json", "special_tokens_map.json",
                        "tokenizer.json"})
    if (fs::exists(from / f))
      fs::copy_file(from / f, fs::path(dir) / f, fs::copy_options::overwrite_existing);
}

}  // namespace

void write_diffusers_pipeline(const core::TensorMap& sd, const std::string& out,
                              const ExportOptions& o) {
  namespace fs = std::filesystem;
  fs::create_directories(out);
  fs::remove(fs::path(out) / "model_index.json");  // the pipeline is complete only at the end
  models::save_diffusers_transformer((fs::path(out) / "transformer").string(), cast(sd, o.dtype),
                                     infer_wan_config(sd, o.num_heads), o.max_shard_bytes);
  nlohmann::json index = {{"_class_name", "WanPipeline"},
                          {"_diffusers_version", "0.33.0"},
                          {"transformer", {"diffusers", "WanTransformer3DModel"}},
                          {"scheduler", {"diffusers", "UniPCMultistepScheduler"}}};
  if (!o.vae.empty()) {
    auto vae = models::load_wan_vae_any(o.vae);
    models::save_diffusers_vae((fs::path(out) / "vae").string(), *vae);
    index["vae"] = {"diffusers", "AutoencoderKLWan"};
  }
  if (!o.text_encoder.empty()) {
    models::save_hf_umt5((fs::path(out) / "text_encoder").string(),
                         models::read_umt5_weights(o.text_encoder), o.text_encoder);
    index["text_encoder"] = {"transformers", "UMT5EncoderModel"};
  }
  if (!o.tokenizer.empty()) {
    copy_tokenizer(o.tokenizer, (fs::path(out) / "tokenizer").string());
    index["tokenizer"] = {"transformers", "T5TokenizerFast"};
  }
  const nlohmann::json sched = {{"_class_name", "UniPCMultistepScheduler"},
                                {"_diffusers_version", "0.33.0"},
                                {"num_train_timesteps", 1000},
                                {"prediction_type", "flow_prediction"},
                                {"use_flow_sigmas", true},
                                {"flow_shift", o.flow_shift},
                                {"solver_order", 2},
                                {"predict_x0", true},
                                {"solver_type", "bh2"},
                                {"lower_order_final", true}};
  fs::create_directories(fs::path(out) / "scheduler");
  core::write_file_atomic((fs::path(out) / "scheduler" / "scheduler_config.json").string(),
                          sched.dump(2));
  core::write_file_atomic((fs::path(out) / "model_index.json").string(), index.dump(2));
}

void export_model(const std::string& src, const std::string& out, const ExportOptions& o) {
  auto sd = models::load_wan_state_dict(src, o.ema ? "generator_ema" : "generator");
  if (o.format == "causvid") return save_causvid(src, out, sd, o.dtype);
  write_model(sd, out, o);
}

void write_model(const core::TensorMap& sd_in, const std::string& out, const ExportOptions& o) {
  core::TensorMap sd = sd_in;
  for (auto& kv : sd) kv.second = kv.second.contiguous();
  if (o.format == "causvid") return save_causvid("", out, sd, o.dtype);
  if (o.format == "safetensors") return core::save_safetensors(out, cast(sd, o.dtype));
  if (o.format == "diffusers" && (!o.vae.empty() || !o.text_encoder.empty() || !o.tokenizer.empty()))
    return write_diffusers_pipeline(sd, out, o);
  if (o.format == "diffusers")
    return models::save_diffusers_transformer(out, cast(sd, o.dtype),
                                              infer_wan_config(sd, o.num_heads), o.max_shard_bytes);
  if (o.format == "comfyui")
    return models::save_comfyui_dit(out, sd, o.dtype.empty() ? "bf16" : o.dtype);
  TORCH_CHECK(false, "--format '", o.format, "': want causvid | safetensors | diffusers | comfyui");
}

}  // namespace causvid::trainer
