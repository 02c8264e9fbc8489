// models/wan/wan_loader.h: loads a WanModel's weights from the files people have:
//   - a state dict with plain WanModel keys (Wan2.1's diffusion_pytorch_model.safetensors,
//     our exports), safetensors or torch.save;
//   - CausVid's / Self-Forcing's model.pt: {"generator": {"model.<key>": ...}, "critic": ...,
//     "generator_ema": ...} (the "model." prefix is the WanDiffusionWrapper's);
//   - a training checkpoint directory (output_path/checkpoint_model_<step>/), whose model.pt
//     is in that same format;
//   - diffusers' layout (a pipeline folder with transformer/, the transformer folder, its
//     shard index) and ComfyUI single files (bf16 / fp16 / fp8, scaled or not): renamed and
//     dequantized by models/wan/wan_layouts.h.
// `which` selects the group in the nested formats ("generator", "generator_ema", "critic").
// Loading is strict: every missing / unexpected / mis-shaped key is reported at once
// (a checkpoint for a different model size fails here naming the file).
#pragma once

#include <string>

#include "core/safetensors.h"
#include "models/wan/wan_model.h"

namespace causvid::models {

// The weight file behind `path`: a directory means <path>/model.pt, else a Wan2.1 / diffusers
// transformer folder's diffusion_pytorch_model.safetensors or its .index.json, else the same
// inside <path>/transformer (a diffusers pipeline folder).
std::string resolve_weight_file(const std::string& path);

// The DiT state dict behind `path` in our names (group `which` of nested files, every layout
// converted); *source = the file read.
core::TensorMap load_wan_state_dict(const std::string& path, const std::string& which = "generator",
                                    std::string* source = nullptr);

void load_wan_weights(WanModel& model, const std::string& path,
                      const std::string& which = "generator");

}  // namespace causvid::models
