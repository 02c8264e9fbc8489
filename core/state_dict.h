// core/state_dict.h: strict state-dict loading into a torch::nn::Module with prefix mapping.
// All problems are collected and reported at once: missing keys, unexpected keys, shape
// mismatches (dtype differences are converted to the parameter's dtype, as PyTorch's
// load_state_dict does with copy_). Mapping tables for foreign formats live in core/ only.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/safetensors.h"

namespace causvid::core {

struct LoadOptions {
  // Keep only keys that start with `select` and strip it (e.g. "generator." for CausVid's
  // model.pt = {"generator": ..., "critic": ...} flattened with dots). Empty: keep all.
  std::string select;
  // Then strip this prefix where present (CausVid's wrapper prefix "model.").
  std::string strip;
  bool strict = true;       // missing or unexpected keys are errors
  std::string source;       // file name used in error messages
};

struct LoadReport {
  std::vector<std::string> missing, unexpected, mismatched;
  int64_t loaded = 0;
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary(size_t max_each = 20) const;
};

// Applies select/strip to the keys of `sd`.
TensorMap map_keys(const TensorMap& sd, const LoadOptions& opt);

// Copies `sd` into the parameters and buffers of `module` (no grad). With opt.strict, throws
// one error listing every missing/unexpected/mismatched key; otherwise returns the report.
LoadReport load_state_dict(torch::nn::Module& module, const TensorMap& sd,
                           const LoadOptions& opt = {});

// named_parameters + named_buffers, detached (the module's state dict).
TensorMap state_dict(const torch::nn::Module& module);

}  // namespace causvid::core
