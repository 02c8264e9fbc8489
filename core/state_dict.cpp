// core/state_dict.cpp: see state_dict.h.
#include "core/state_dict.h"

#include <sstream>

namespace causvid::core {

std::string LoadReport::summary(size_t max_each) const {
  std::ostringstream os;
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    os << " " << v.size() << " " << what << ": ";
    for (size_t i = 0; i < v.size() && i < max_each; ++i) os << (i ? ", " : "") << v[i];
    if (v.size() > max_each) os << ", ... (" << v.size() - max_each << " more)";
    os << ";";
  };
  list("missing keys", missing);
  list("unexpected keys", unexpected);
  list("shape mismatches", mismatched);
  return os.str();
}

TensorMap map_keys(const TensorMap& sd, const LoadOptions& opt) {
  TensorMap out;
  for (const auto& kv : sd) {
    std::string k = kv.first;
    if (!opt.select.empty()) {
      if (k.rfind(opt.select, 0) != 0) continue;
      k = k.substr(opt.select.size());
    }
    if (!opt.strip.empty() && k.rfind(opt.strip, 0) == 0) k = k.substr(opt.strip.size());
    out[k] = kv.second;
  }
  return out;
}

TensorMap state_dict(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& p : module.named_parameters(true)) out[p.key()] = p.value().detach();
  for (const auto& b : module.named_buffers(true)) out[b.key()] = b.value().detach();
  return out;
}

LoadReport load_state_dict(torch::nn::Module& module, const TensorMap& sd_in,
                           const LoadOptions& opt) {
  TensorMap sd = map_keys(sd_in, opt);
  const std::string src = opt.source.empty() ? std::string("state dict") : opt.source;
  if (!opt.select.empty() && sd.empty() && !sd_in.empty()) {
    // Name the prefixes that are there: the usual cause is a wrong select prefix.
    std::ostringstream os;
    size_t n = 0;
    for (const auto& kv : sd_in) {
      if (n++ == 3) break;
      os << (n > 1 ? ", " : "") << "'" << kv.first << "'";
    }
    TORCH_CHECK(false, src, ": no key starts with '", opt.select, "' (keys look like ", os.str(),
                ", ...)");
  }
  LoadReport rep;
  TensorMap targets = state_dict(module);
  for (const auto& kv : targets) {
    auto it = sd.find(kv.first);
    if (it == sd.end()) {
      rep.missing.push_back(kv.first);
      continue;
    }
    if (it->second.sizes() != kv.second.sizes()) {
      std::ostringstream os;
      os << kv.first << " (file " << it->second.sizes() << ", model " << kv.second.sizes() << ")";
      rep.mismatched.push_back(os.str());
    }
  }
  for (const auto& kv : sd)
    if (!targets.count(kv.first)) rep.unexpected.push_back(kv.first);
  TORCH_CHECK(rep.mismatched.empty(), src, ": cannot load:", rep.summary());
  if (opt.strict) TORCH_CHECK(rep.ok(), src, ": strict load failed:", rep.summary());
  // Loadable but wrong: integer values for float parameters (a cast would hide a file that
  // is not weights) and non-finite values (the model could only produce NaN).
  for (const auto& kv : targets) {
    auto it = sd.find(kv.first);
    if (it == sd.end() || !kv.second.is_floating_point()) continue;
    TORCH_CHECK(it->second.is_floating_point(), src, ": '", kv.first, "' holds ",
                c10::toString(it->second.scalar_type()), " values for a floating-point "
                "parameter (want F32 / BF16 / F16 / F8 weights)");
    TORCH_CHECK(it->second.numel() == 0 || torch::isfinite(it->second).all().item<bool>(), src,
                ": '", kv.first, "' holds non-finite values (NaN or Inf): the weights are damaged");
  }
  torch::NoGradGuard no_grad;
  for (auto& kv : targets) {
    auto it = sd.find(kv.first);
    if (it == sd.end()) continue;
    kv.second.copy_(it->second.to(kv.second.device()));
    ++rep.loaded;
  }
  return rep;
}

}  // namespace causvid::core
