// trainer/model_export.h: `causvid export`: a generator from any file we load (a training
// checkpoint directory or its model.pt, a Wan2.1 / our safetensors, a diffusers folder, a
// ComfyUI file) written in the layout another tool wants:
//   causvid      model.pt {"generator": {"model.<key>"}, "critic": ...} that CausVid's and
//                Self-Forcing's Python torch.load (the critic comes along from a checkpoint);
//   safetensors  the plain WanModel keys (Wan2.1's own diffusion_pytorch_model layout);
//   diffusers    a WanTransformer3DModel folder (config.json, shards + index above
//                max_shard_bytes) for WanPipeline(transformer=...);
//   comfyui      one file with ComfyUI's model.diffusion_model. prefix, bf16 by default,
//                or fp16 / fp32 / fp8_e4m3fn / fp8_e4m3fn_scaled.
#pragma once

#include <cstdint>
#include <string>

#include "models/wan/wan_config.h"
#include "core/safetensors.h"

namespace causvid::trainer {

struct ExportOptions {
  std::string format = "causvid";  // causvid | safetensors | diffusers | comfyui
  bool ema = false;                // the generator's EMA instead of the generator
  std::string dtype;               // "" = as stored (comfyui: bf16); bf16 | fp16 | fp32 | fp8_*
  int64_t num_heads = 0;           // diffusers' config: 0 = dim / 128 (Wan2.1's head dim)
  uint64_t max_shard_bytes = uint64_t(5) << 30;
  // diffusers only: with any of these, OUT becomes a whole WanPipeline folder (transformer/,
  // vae/, text_encoder/, tokenizer/, scheduler/, model_index.json written last) holding the
  // VAE (any file or folder vae_path reads), umT5 encoder and tokenizer given here.
  std::string vae, text_encoder, tokenizer;
  double flow_shift = 3.0;  // scheduler/scheduler_config.json (UniPC, as Wan's folders)
};

void export_model(const std::string& src, const std::string& out, const ExportOptions& o);

// A WanPipeline folder around an exported transformer (the parts of o that are set).
void write_diffusers_pipeline(const core::TensorMap& sd, const std::string& out,
                              const ExportOptions& o);

// Writes a generator state dict (our names) as o.format (causvid: the generator only).
void write_model(const core::TensorMap& sd, const std::string& out, const ExportOptions& o);

// Compatibility: export_model with format and ema only.
inline void export_checkpoint(const std::string& src, const std::string& out,
                              const std::string& format, bool ema) {
  ExportOptions o;
  o.format = format;
  o.ema = ema;
  export_model(src, out, o);
}

// The WanModel sizes a state dict (our names) implies; the head count is not in the weights:
// num_heads, or dim / 128 when 0.
models::WanConfig infer_wan_config(const core::TensorMap& sd, int64_t num_heads);

}  // namespace causvid::trainer
