// models/wan/lora_adapters.h: trainable LoRA adapters on the Wan DiT's block linears,
// applied on the fly (y = W x + b + (alpha / r) * B(A(dropout(x)))) while the base weights
// stay frozen. PEFT's initialisation: A kaiming-uniform(a = sqrt(5)), B zero, so training
// starts from the base model. The adapters are their own module (trained, sharded,
// checkpointed apart from the frozen base: trainer/train_model.h) and convert to a LoraFile
// (models/wan/lora.h) to be saved in ComfyUI's or diffusers' layout.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/wan/lora.h"
#include "models/wan/wan_config.h"

namespace causvid::models {

// The block linears an adapter can sit on, in our (Wan's) names.
enum LoraSlot { kSelfQ, kSelfK, kSelfV, kSelfO, kCrossQ, kCrossK, kCrossV, kCrossO, kFfn0, kFfn2,
                kNumLoraSlots };
const char* lora_slot_name(int slot);  // "self_attn.q", ..., "ffn.2"

struct LoraSpec {
  int64_t rank = 0;  // 0 = no adapters
  double alpha = 0;  // 0 = rank
  double dropout = 0;
  // Target modules by name: a slot's full name ("self_attn.q", "ffn.0") or its last part
  // ("q" = self_attn.q and cross_attn.q; "o"; "ffn" = both FFN linears).
  std::vector<std::string> targets = {"q", "k", "v", "o", "ffn.0", "ffn.2"};
};

// The slots `targets` select; throws naming an unknown target.
std::vector<bool> lora_slots(const std::vector<std::string>& targets);

// Parameters the adapters of `spec` have on a model of `cfg` (r * (in + out) per adapter).
int64_t lora_param_count(const WanConfig& cfg, const LoraSpec& spec);

class LoraAdaptersImpl : public torch::nn::Module {
 public:
  LoraAdaptersImpl(const WanConfig& cfg, const LoraSpec& spec, uint64_t seed);

  // y + (alpha / r) * B(A(dropout(x))) for the adapter at (layer, slot); y when none.
  torch::Tensor apply(int64_t layer, int slot, const torch::Tensor& x, const torch::Tensor& y) const;
  bool has(int64_t layer, int slot) const;
  // Whether the adapters are being trained (their parameters require grad).
  bool trainable() const;
  const LoraSpec& spec() const { return spec_; }
  // The adapters as a LoraFile in our module names (alpha as trained): their current values,
  // or the values of `named` (a state dict of this module, e.g. the fp32 master copy or an
  // EMA) when given.
  LoraFile to_file(const core::TensorMap* named = nullptr) const;

 private:
  LoraSpec spec_;
  double scale_ = 1;
  int64_t layers_ = 0;
  std::vector<torch::Tensor> a_, b_;  // [layer * kNumLoraSlots + slot], undefined = none
};
TORCH_MODULE(LoraAdapters);

}  // namespace causvid::models
