// models/wan/wan_layouts.h: the Wan2.1 DiT's weights in the layouts people download, read
// into and written from our (= Wan2.1's own) parameter names:
//   - wan:       Wan2.1's diffusion_pytorch_model.safetensors / our exports: WanModel keys;
//   - diffusers: Wan-AI/Wan2.1-T2V-*-Diffusers transformer/ (WanTransformer3DModel keys,
//                config.json, one file or shards + diffusion_pytorch_model.safetensors.index.json);
//   - comfyui:   a single file whose keys carry ComfyUI's "model.diffusion_model." prefix,
//                weights in bf16 / fp16 / fp8 e4m3fn, the "fp8 scaled" variant with a
//                per-tensor "<module>.scale_weight" beside each fp8 weight and a "scaled_fp8"
//                marker tensor.
// The diffusers names live in one KeyTable (diffusers_wan_dit_table), used both ways.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/safetensors.h"
#include "models/common/key_table.h"
#include "models/wan/wan_config.h"

namespace causvid::models {

// WanModel names <-> WanTransformer3DModel names (diffusers' convert_wan_to_diffusers.py).
const KeyTable& diffusers_wan_dit_table();

// WanTransformer3DModel's config.json <-> our sizes. text_len is not in diffusers' config
// (its pipeline pads prompts to 512): 512. Throws naming `source` and the field.
WanConfig wan_config_from_diffusers(const nlohmann::json& j, const std::string& source);
nlohmann::json diffusers_config_from_wan(const WanConfig& c);

enum class DitLayout { kWan, kDiffusers, kComfyUI };
const char* dit_layout_name(DitLayout l);
DitLayout parse_dit_layout(const std::string& name);  // "wan" | "diffusers" | "comfyui"

// A flat DiT state dict in any layout -> our names, fp8 weights dequantized to float32
// (ComfyUI: weight.float() * scale_weight). ComfyUI's prefix selects its keys (others, e.g.
// a bundled VAE, are ignored); diffusers keys are renamed through the table. Float tensors
// otherwise keep their dtype (loading casts to the module's).
core::TensorMap wan_dit_to_ours(const core::TensorMap& sd, const std::string& source);
DitLayout detect_dit_layout(const core::TensorMap& sd);

// ComfyUI's fp8 handling on a state dict (any names): "<m>.scale_weight" multiplies
// "<m>.weight" (scalar or per output row); "scale_input" and the "scaled_fp8" marker are
// dropped; every fp8 tensor becomes float32. With the marker, an fp8 weight without its
// scale is an error naming the key and `source`.
core::TensorMap dequantize_fp8(const core::TensorMap& sd, const std::string& source);

// Writing. `sd` in our names. diffusers: <dir>/config.json + weights (sharded above
// max_shard_bytes); comfyui: one file with the prefix, `dtype` "bf16" | "fp16" | "fp32" |
// "fp8_e4m3fn" (blocks' 2-D Linear weights in fp8, the rest bf16) | "fp8_e4m3fn_scaled"
// (the same with per-tensor scales = absmax / 448 and the scaled_fp8 marker).
void save_diffusers_transformer(const std::string& dir, const core::TensorMap& sd,
                                const WanConfig& cfg, uint64_t max_shard_bytes);
void save_comfyui_dit(const std::string& file, const core::TensorMap& sd, const std::string& dtype);
// The dtype names above -> torch dtypes ("fp8_e4m3fn*" -> kFloat8_e4m3fn); throws on others.
torch::ScalarType export_dtype(const std::string& name);

}  // namespace causvid::models
