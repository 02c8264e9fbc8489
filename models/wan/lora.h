// models/wan/lora.h: LoRA adapters of the Wan DiT as files people share, and what is done with
// them: read, check against a model, merge, write, extract from two checkpoints.
//
// File layouts (both read and written; tests/fixtures/KINDS.lora.md):
//   comfyui  "diffusion_model.<module>.lora_down.weight" [r, in], ".lora_up.weight" [out, r],
//            ".alpha" (scalar), optionally ".diff_b" (a bias delta) and ".diff" (a whole-tensor
//            delta, e.g. of a norm); our (= Wan's) module names. ComfyUI and Kijai's CausVid
//            LoRAs use it; "lora_A" / "lora_B" are accepted for down / up.
//   peft     "transformer.<diffusers module>.lora_A.weight" / ".lora_B.weight" (+ ".lora_B.bias")
//            as diffusers' save_lora_weights writes; alpha from the safetensors metadata
//            "lora_adapter_metadata" ("transformer.lora_alpha"), else alpha = r.
// A module's weight becomes W + scale * (alpha / r) * up @ down, its bias b + scale * diff_b
// (peft's lora_B.bias: b + scale * (alpha / r) * bias), a .diff tensor T + scale * diff.
// A file without any alpha takes alpha = r for every module (diffusers' and ComfyUI's rule; it
// is how Kijai's CausVid LoRAs are saved); a file with alpha on some modules only is refused.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace causvid::models {

struct LoraModule {
  std::string target;        // our module name, e.g. "blocks.0.self_attn.q"
  torch::Tensor down, up;    // [r, in], [out, r] (undefined for diff-only entries)
  double alpha = 0;          // set by read_lora (alpha = r when the file has none)
  torch::Tensor up_bias;     // peft lora_B.bias [out], scaled like the weight delta
  torch::Tensor diff_b;      // bias delta [out]
  torch::Tensor diff;        // whole-tensor delta of "<target>.weight" (or of "<target>"
                             // itself for a parameter not named weight: blocks.0.modulation)
  int64_t rank() const { return down.defined() ? down.size(0) : 0; }
};

struct LoraFile {
  std::string source, format;  // format: "comfyui" | "peft"
  std::vector<LoraModule> modules;
};

// Reads a LoRA file in either layout. Errors name the file and key: unknown suffixes,
// lora_down without lora_up (or the reverse), rank mismatches between them, alpha on some
// modules only, a peft key whose module diffusers' Wan names do not have.
LoraFile read_lora(const std::string& path);

// Checks a LoRA against a model's state dict (our names): every target must exist with a
// matching shape. All problems are reported at once, naming the file and the keys.
void check_lora(const LoraFile& lora, const core::TensorMap& model_sd);

// Adds the LoRA at `scale` into `weights` (our names; tensors updated in place in their own
// dtype, the delta computed in float32). check_lora runs first.
void merge_lora(core::TensorMap& weights, const LoraFile& lora, double scale);

// Writes `lora` as `format`. peft folds alpha / r into lora_B and writes no alpha (so each
// module's factor is 1 whatever its rank); comfyui writes .alpha. .diff / .diff_b are comfyui
// only (a peft file with them is refused).
void save_lora(const std::string& path, const LoraFile& lora, const std::string& format);

// "FILE[:SCALE]" (the --lora flag): the file and its strength (default 1). Throws naming the
// flag on a bad scale.
std::pair<std::string, double> parse_lora_spec(const std::string& spec);

// Merges LoRA files ("FILE[:SCALE]" each, in order) into `weights`, logging each.
void merge_lora_specs(core::TensorMap& weights, const std::vector<std::string>& specs);
// The same into a model's weights (a no-op without specs).
void merge_loras_into(torch::nn::Module& model, const std::vector<std::string>& specs);

struct ExtractOptions {
  int64_t rank = 32;
  // Modules (our names, regex over "<module>") whose 2-D weights get low-rank factors;
  // default: the blocks' attention and FFN linears.
  std::string targets = R"(blocks\.\d+\.(self_attn|cross_attn)\.(q|k|v|o)|blocks\.\d+\.ffn\.(0|2))";
  bool diffs = true;  // other changed tensors as .diff / .diff_b (exact), else dropped
};

struct ExtractReport {
  struct Entry {
    std::string module;
    int64_t rank = 0;
    double energy = 1;  // sum of the kept squared singular values / all of them
  };
  std::vector<Entry> modules;
  double min_energy = 1, mean_energy = 1;
  int64_t diff_tensors = 0, dropped_tensors = 0;
};

// The LoRA that turns `base` into `tuned` (both our names, same keys and shapes): truncated
// SVD of each target weight difference (up = U_r S_r, down = V_r^T, alpha = r), bias deltas
// as .diff_b, other changed tensors as .diff (opts.diffs).
LoraFile extract_lora(const core::TensorMap& base, const core::TensorMap& tuned,
                      const ExtractOptions& opts, ExtractReport* report = nullptr);

}  // namespace causvid::models
