// models/common/key_table.h: a renaming table between our (the reference's) parameter names
// and a foreign checkpoint layout (diffusers, transformers), used both ways. One table per
// layout, each in its model's *_layouts.cpp (as stable-diffusion.cpp keeps its name
// conversion in one place).
//
// A rule pairs two patterns over dot-separated keys: "{i}" matches a decimal index, "{*}"
// one or more name segments up to the end of the key (e.g. "weight", "gamma"), anything else
// literally. Both patterns of a rule hold the same placeholders in the same order. A key is
// renamed by the first rule whose source pattern matches it whole; a key that no rule
// matches is an error naming it (and the file), never silently dropped.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/safetensors.h"

namespace causvid::models {

// Prefix / suffix tests of key names, shared by the layout and LoRA code.
inline bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
inline bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

class KeyTable {
 public:
  // (ours, theirs) pattern pairs; `layout` names the foreign layout in errors.
  KeyTable(std::string layout, std::vector<std::pair<std::string, std::string>> rules);

  const std::string& layout() const { return layout_; }
  // Our key -> the foreign key, and back. Throw naming the key, the layout and `source`.
  std::string to_foreign(const std::string& key, const std::string& source = "") const;
  std::string to_ours(const std::string& key, const std::string& source = "") const;
  // Whole state dicts; two keys renamed onto one name are an error.
  core::TensorMap to_foreign(const core::TensorMap& sd, const std::string& source = "") const;
  core::TensorMap to_ours(const core::TensorMap& sd, const std::string& source = "") const;

 private:
  std::string rename(const std::string& key, bool forward, const std::string& source) const;
  core::TensorMap rename_all(const core::TensorMap& sd, bool forward,
                             const std::string& source) const;
  std::string layout_;
  // The rules' two patterns split at the dots once (ours, theirs), in rule order.
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> rules_;
};

}  // namespace causvid::models
