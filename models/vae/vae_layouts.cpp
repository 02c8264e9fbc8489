// models/vae/vae_layouts.cpp: see vae_layouts.h.
#include "models/vae/vae_layouts.h"

#include <filesystem>
#include <fstream>

#include "core/fs.h"
#include "core/state_dict.h"
#include "core/tensor_io.h"

namespace causvid::models {
namespace {

using Rules = std::vector<std::pair<std::string, std::string>>;

// A residual block at `ours` <-> `theirs` (module paths).
void resblock(Rules& r, const std::string& ours, const std::string& theirs) {
  r.push_back({ours + ".residual.0.gamma", theirs + ".norm1.gamma"});
  r.push_back({ours + ".residual.2.{*}", theirs + ".conv1.{*}"});
  r.push_back({ours + ".residual.3.gamma", theirs + ".norm2.gamma"});
  r.push_back({ours + ".residual.6.{*}", theirs + ".conv2.{*}"});
  r.push_back({ours + ".shortcut.{*}", theirs + ".conv_shortcut.{*}"});
}

}  // namespace

KeyTable diffusers_wan_vae_table(const WanVAEConfig& cfg) {
  Rules r = {{"conv1.{*}", "quant_conv.{*}"}, {"conv2.{*}", "post_quant_conv.{*}"}};
  for (const std::string side : {"encoder", "decoder"}) {
    r.push_back({side + ".conv1.{*}", side + ".conv_in.{*}"});
    resblock(r, side + ".middle.0", side + ".mid_block.resnets.0");
    r.push_back({side + ".middle.1.{*}", side + ".mid_block.attentions.0.{*}"});
    resblock(r, side + ".middle.2", side + ".mid_block.resnets.1");
    r.push_back({side + ".head.0.gamma", side + ".norm_out.gamma"});
    r.push_back({side + ".head.2.{*}", side + ".conv_out.{*}"});
  }
  // Encoder: one flat list on both sides; resblock leaves renamed, resample leaves kept.
  resblock(r, "encoder.downsamples.{i}", "encoder.down_blocks.{i}");
  r.push_back({"encoder.downsamples.{i}.{*}", "encoder.down_blocks.{i}.{*}"});
  // Decoder: per stage, num_res_blocks + 1 resblocks then (not after the last) an upsampler.
  const int64_t R = cfg.num_res_blocks, S = static_cast<int64_t>(cfg.dim_mult.size());
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t j = 0; j <= R; ++j)
      resblock(r, "decoder.upsamples." + std::to_string(s * (R + 2) + j),
               "decoder.up_blocks." + std::to_string(s) + ".resnets." + std::to_string(j));
    if (s + 1 < S)
      r.push_back({"decoder.upsamples." + std::to_string(s * (R + 2) + R + 1) + ".{*}",
                   "decoder.up_blocks." + std::to_string(s) + ".upsamplers.0.{*}"});
  }
  return KeyTable("diffusers AutoencoderKLWan", std::move(r));
}

WanVAEConfig vae_config_from_diffusers(const nlohmann::json& j, const std::string& source,
                                       torch::Tensor* mean, torch::Tensor* std) {
  auto get = [&](const char* k) -> const nlohmann::json& {
    TORCH_CHECK(j.contains(k) && !j[k].is_null(), source, ": config field '", k, "' missing");
    return j[k];
  };
  if (j.contains("_class_name"))
    TORCH_CHECK(j["_class_name"] == "AutoencoderKLWan", source, ": _class_name ",
                j["_class_name"].dump(), ", want AutoencoderKLWan");
  TORCH_CHECK(!j.value("is_residual", false), source,
              ": is_residual true is the Wan2.2 VAE, not supported (Wan2.1's only)");
  TORCH_CHECK(!j.contains("decoder_base_dim") || j["decoder_base_dim"].is_null() ||
                  j["decoder_base_dim"] == j["base_dim"],
              source, ": decoder_base_dim differs from base_dim: not a Wan2.1 VAE");
  TORCH_CHECK(!j.contains("patch_size") || j["patch_size"].is_null(), source,
              ": patch_size is set (Wan2.2 VAE): not supported");
  WanVAEConfig c;
  c.dim = get("base_dim").get<int64_t>();
  c.z_dim = get("z_dim").get<int64_t>();
  c.dim_mult = get("dim_mult").get<std::vector<int64_t>>();
  c.num_res_blocks = get("num_res_blocks").get<int64_t>();
  c.attn_scales = get("attn_scales").get<std::vector<double>>();
  TORCH_CHECK(c.attn_scales.empty(), source, ": attn_scales ", j["attn_scales"].dump(),
              ": diffusers' decoder ignores them, so only [] (Wan2.1) maps to Wan's VAE");
  c.temperal_downsample = get("temperal_downsample").get<std::vector<bool>>();
  c.validate();
  auto stat = [&](const char* k, torch::Tensor* out) {
    if (!out) return;
    auto v = get(k).get<std::vector<float>>();
    TORCH_CHECK(static_cast<int64_t>(v.size()) == c.z_dim, source, ": ", k, " has ", v.size(),
                " values, want z_dim = ", c.z_dim);
    *out = torch::tensor(v);
  };
  stat("latents_mean", mean);
  stat("latents_std", std);
  return c;
}

void save_diffusers_vae(const std::string& dir, WanVAEWrapper& vae) {
  const auto& c = vae.model()->config();
  auto sd = core::state_dict(*vae.model());
  auto theirs = diffusers_wan_vae_table(c).to_foreign(sd, dir);
  auto list = [](const torch::Tensor& t) {
    auto f = t.to(torch::kFloat32).contiguous().cpu();
    return std::vector<float>(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  };
  nlohmann::json j = {{"_class_name", "AutoencoderKLWan"}, {"_diffusers_version", "0.33.0"},
                      {"attn_scales", c.attn_scales},      {"base_dim", c.dim},
                      {"dim_mult", c.dim_mult},            {"dropout", 0.0},
                      {"latents_mean", list(vae.mean())},  {"latents_std", list(vae.std())},
                      {"num_res_blocks", c.num_res_blocks}, {"temperal_downsample", c.temperal_downsample},
                      {"z_dim", c.z_dim}};
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  fs::remove(fs::path(dir) / "diffusion_pytorch_model.safetensors");
  core::write_file_atomic((fs::path(dir) / "config.json").string(), j.dump(2));
  core::save_safetensors((fs::path(dir) / "diffusion_pytorch_model.safetensors").string(), theirs);
}

namespace {

std::unique_ptr<WanVAEWrapper> load_diffusers_vae(const std::string& dir) {
  const auto cfg_path = (std::filesystem::path(dir) / "config.json").string();
  std::ifstream in(cfg_path);
  TORCH_CHECK(in, cfg_path, ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, cfg_path, ": not valid JSON: ", e.what());
  }
  torch::Tensor mean, std;
  WanVAEConfig cfg;
  try {
    cfg = vae_config_from_diffusers(j, cfg_path, &mean, &std);
  } catch (const nlohmann::json::exception& e) {  // a field of the wrong JSON type
    TORCH_CHECK(false, cfg_path, ": ", e.what());
  } catch (const c10::Error& e) {  // WanVAEConfig::validate names the field, not the file
    const std::string msg = e.what_without_backtrace();
    TORCH_CHECK(false, msg.rfind(cfg_path, 0) == 0 ? msg : cfg_path + ": " + msg);
  }
  std::string file = (std::filesystem::path(dir) / "diffusion_pytorch_model.safetensors").string();
  if (!std::filesystem::exists(file)) file += ".index.json";
  TORCH_CHECK(std::filesystem::exists(file), dir, ": no diffusion_pytorch_model.safetensors");
  auto sd = diffusers_wan_vae_table(cfg).to_ours(core::load_weights(file), file);
  auto vae = std::make_unique<WanVAEWrapper>(cfg, mean, std);
  vae->load(sd, file);
  vae->model()->eval();
  return vae;
}

}  // namespace

std::unique_ptr<WanVAEWrapper> load_wan_vae_any(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    if (fs::exists(fs::path(path) / "config.json")) return load_diffusers_vae(path);
    if (fs::is_directory(fs::path(path) / "vae")) return load_wan_vae_any((fs::path(path) / "vae").string());
    TORCH_CHECK(false, "vae_path: ", path, " is a directory without config.json (a diffusers "
                "vae/ folder) or vae/ (a diffusers pipeline folder); want the VAE file or one of those");
  }
  TORCH_CHECK(fs::is_regular_file(path), "vae_path: ", path, " does not exist");
  auto sd = core::load_weights(path);
  auto find = [&](const char* k) {
    auto it = sd.find(k);
    TORCH_CHECK(it != sd.end(), "vae_path: ", path, " lacks '", k, "': not a Wan VAE");
    return it->second;
  };
  WanVAEConfig cfg;
  cfg.dim = find("encoder.conv1.weight").size(0);
  cfg.z_dim = find("conv2.weight").size(0);
  torch::Tensor mean, std;
  if (sd.count("latent_mean") && sd.count("latent_std")) {
    mean = sd["latent_mean"].to(torch::kFloat32);
    std = sd["latent_std"].to(torch::kFloat32);
    sd.erase("latent_mean");
    sd.erase("latent_std");
  } else if (cfg.z_dim == 16) {
    mean = torch::tensor(wan21_latent_mean());
    std = torch::tensor(wan21_latent_std());
  } else {
    mean = torch::zeros({cfg.z_dim});
    std = torch::ones({cfg.z_dim});
  }
  auto vae = std::make_unique<WanVAEWrapper>(cfg, mean, std);
  vae->load(sd, path);
  vae->model()->eval();
  return vae;
}

}  // namespace causvid::models
