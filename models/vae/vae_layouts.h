// models/vae/vae_layouts.h: the Wan2.1 VAE in the layouts people download: Wan2.1_VAE.pth
// (our names) and diffusers' AutoencoderKLWan folder (vae/config.json +
// diffusion_pytorch_model.safetensors). The diffusers names live in one KeyTable, generated
// for the config's stage count and num_res_blocks (the decoder's flat upsamples list is
// numbered stage * (num_res_blocks + 2) + j), used both ways.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "models/common/key_table.h"
#include "models/vae/wan_vae.h"

namespace causvid::models {

KeyTable diffusers_wan_vae_table(const WanVAEConfig& cfg);

// AutoencoderKLWan's config.json -> our config and latent statistics (latents_mean / _std).
// Rejects the Wan2.2 VAE (is_residual), decoder_base_dim and attention scales, naming source.
WanVAEConfig vae_config_from_diffusers(const nlohmann::json& j, const std::string& source,
                                       torch::Tensor* mean = nullptr, torch::Tensor* std = nullptr);

// Writes a VAE as diffusers' AutoencoderKLWan folder: <dir>/config.json (with its latent
// statistics) + diffusion_pytorch_model.safetensors in diffusers' names.
void save_diffusers_vae(const std::string& dir, WanVAEWrapper& vae);

// A VAE from a Wan2.1_VAE.pth / .safetensors file (sizes from its keys; latent statistics from
// latent_mean / latent_std keys, else Wan2.1's constants for z_dim 16, else 0 / 1), a
// diffusers vae/ folder, or a diffusers pipeline folder holding vae/. Eval mode, CPU float32.
std::unique_ptr<WanVAEWrapper> load_wan_vae_any(const std::string& path);

}  // namespace causvid::models
