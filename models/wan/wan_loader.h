// models/wan/wan_loader.h: loads a WanModel's weights from the files people have:
//   - a state dict with plain WanModel keys (Wan2.1's diffusion_pytorch_model.safetensors,
//     our exports), safetensors or torch.save;
//   - CausVid's / Self-Forcing's model.pt: {"generator": {"model.<key>": ...}, "critic": ...,
//     "generator_ema": ...} (the "model." prefix is the WanDiffusionWrapper's);
//   - a training checkpoint directory (output_path/checkpoint_model_<step>/), whose model.pt
//     is in that same format.
// `which` selects the group in the nested formats ("generator", "generator_ema", "critic").
// Loading is strict: every missing / unexpected / mis-shaped key is reported at once
// (a checkpoint for a different model size fails here naming the file).
#pragma once

#include <string>

#include "models/wan/wan_model.h"

namespace causvid::models {

// The weight file behind `path` (a directory means <path>/model.pt, else a Wan2.1 folder's
// diffusion_pytorch_model.safetensors).
std::string resolve_weight_file(const std::string& path);

void load_wan_weights(WanModel& model, const std::string& path,
                      const std::string& which = "generator");

}  // namespace causvid::models
