// models/wan/lora_adapters.cpp: see lora_adapters.h.
#include "models/wan/lora_adapters.h"

#include <cmath>

namespace causvid::models {

const char* lora_slot_name(int slot) {
  static const char* kNames[] = {"self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                                 "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o",
                                 "ffn.0", "ffn.2"};
  TORCH_CHECK(slot >= 0 && slot < kNumLoraSlots, "lora slot ", slot);
  return kNames[slot];
}

std::vector<bool> lora_slots(const std::vector<std::string>& targets) {
  std::vector<bool> on(kNumLoraSlots, false);
  for (const auto& t : targets) {
    bool hit = false;
    for (int s = 0; s < kNumLoraSlots; ++s) {
      const std::string n = lora_slot_name(s);
      const std::string last = n.substr(n.rfind('.') + 1);
      if (t == n || t == last || (t == "ffn" && n.rfind("ffn.", 0) == 0) ||
          (t == "self_attn" && n.rfind("self_attn.", 0) == 0) ||
          (t == "cross_attn" && n.rfind("cross_attn.", 0) == 0)) {
        on[s] = true;
        hit = true;
      }
    }
    TORCH_CHECK(hit, "lora target '", t, "': want self_attn.q|k|v|o, cross_attn.q|k|v|o, ffn.0, "
                "ffn.2, or q, k, v, o, ffn, self_attn, cross_attn");
  }
  return on;
}

namespace {

// "b<layer>_<slot with '_' for '.'>": the adapters' parameter names (A / B appended).
std::string param_name(int64_t layer, int slot) {
  std::string name = "b" + std::to_string(layer) + "_" + lora_slot_name(slot);
  for (auto& c : name)
    if (c == '.') c = '_';
  return name;
}

}  // namespace

int64_t lora_param_count(const WanConfig& cfg, const LoraSpec& spec) {
  const auto on = lora_slots(spec.targets);
  int64_t per_layer = 0;
  for (int s = 0; s < kNumLoraSlots; ++s) {
    if (!on[s]) continue;
    const int64_t in = s == kFfn2 ? cfg.ffn_dim : cfg.dim, out = s == kFfn0 ? cfg.ffn_dim : cfg.dim;
    per_layer += spec.rank * (in + out);
  }
  return per_layer * cfg.num_layers;
}

LoraAdaptersImpl::LoraAdaptersImpl(const WanConfig& cfg, const LoraSpec& spec, uint64_t seed)
    : spec_(spec), layers_(cfg.num_layers) {
  TORCH_CHECK(spec.rank >= 1, "lora rank: got ", spec.rank, ", want >= 1");
  TORCH_CHECK(spec.dropout >= 0 && spec.dropout < 1, "lora dropout: got ", spec.dropout,
              ", want [0, 1)");
  if (spec_.alpha <= 0) spec_.alpha = static_cast<double>(spec.rank);
  scale_ = spec_.alpha / static_cast<double>(spec.rank);
  const auto on = lora_slots(spec.targets);
  const int64_t D = cfg.dim, Fd = cfg.ffn_dim;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  a_.resize(layers_ * kNumLoraSlots);
  b_.resize(layers_ * kNumLoraSlots);
  for (int64_t l = 0; l < layers_; ++l)
    for (int s = 0; s < kNumLoraSlots; ++s) {
      if (!on[s]) continue;
      const int64_t in = s == kFfn2 ? Fd : D, out = s == kFfn0 ? Fd : D;
      // kaiming_uniform_(a=sqrt(5)) on [r, in]: bound = 1 / sqrt(in).
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      auto a = torch::empty({spec.rank, in}).uniform_(-bound, bound, gen);
      const std::string name = param_name(l, s);
      a_[l * kNumLoraSlots + s] = register_parameter(name + "_A", a);
      b_[l * kNumLoraSlots + s] = register_parameter(name + "_B", torch::zeros({out, spec.rank}));
    }
}

bool LoraAdaptersImpl::has(int64_t layer, int slot) const {
  return layer < layers_ && a_[layer * kNumLoraSlots + slot].defined();
}

bool LoraAdaptersImpl::trainable() const {
  for (const auto& a : a_)
    if (a.defined()) return a.requires_grad();
  return false;
}

torch::Tensor LoraAdaptersImpl::apply(int64_t layer, int slot, const torch::Tensor& x,
                                      const torch::Tensor& y) const {
  if (!has(layer, slot)) return y;
  const auto& a = a_[layer * kNumLoraSlots + slot];
  const auto& b = b_[layer * kNumLoraSlots + slot];
  auto h = x.to(a.scalar_type());
  if (spec_.dropout > 0 && is_training() && torch::GradMode::is_enabled())
    h = torch::dropout(h, spec_.dropout, true);
  auto d = torch::linear(torch::linear(h, a), b);
  return y + (d * scale_).to(y.scalar_type());
}

LoraFile LoraAdaptersImpl::to_file(const core::TensorMap* named) const {
  auto value = [&](const std::string& name, const torch::Tensor& own) {
    if (!named) return own.detach();
    auto it = named->find(name);
    TORCH_CHECK(it != named->end(), "lora adapters: no '", name, "' in the state dict");
    return it->second;
  };
  LoraFile f;
  f.format = "comfyui";
  for (int64_t l = 0; l < layers_; ++l)
    for (int s = 0; s < kNumLoraSlots; ++s) {
      if (!has(l, s)) continue;
      LoraModule m;
      m.target = "blocks." + std::to_string(l) + "." + lora_slot_name(s);
      const std::string name = param_name(l, s);
      m.down = value(name + "_A", a_[l * kNumLoraSlots + s]).to(torch::kFloat32).cpu().clone();
      m.up = value(name + "_B", b_[l * kNumLoraSlots + s]).to(torch::kFloat32).cpu().clone();
      m.alpha = spec_.alpha;
      f.modules.push_back(std::move(m));
    }
  return f;
}

}  // namespace causvid::models
