// models/common/key_table.cpp: see key_table.h.
#include "models/common/key_table.h"

#include <optional>

namespace causvid::models {
namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t e; (e = s.find('.', b)) != std::string::npos; b = e + 1) out.push_back(s.substr(b, e - b));
  out.push_back(s.substr(b));
  return out;
}

bool is_index(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// The placeholder values of `key` under `pattern`, in order, or nullopt.
std::optional<std::vector<std::string>> match(const std::vector<std::string>& pat,
                                              const std::vector<std::string>& key) {
  std::vector<std::string> got;
  for (size_t i = 0; i < pat.size(); ++i) {
    if (pat[i] == "{*}") {  // the rest of the key (at least one segment)
      if (i + 1 != pat.size() || i >= key.size()) return std::nullopt;
      std::string rest = key[i];
      for (size_t j = i + 1; j < key.size(); ++j) rest += "." + key[j];
      got.push_back(rest);
      return got;
    }
    if (i >= key.size()) return std::nullopt;
    if (pat[i] == "{i}") {
      if (!is_index(key[i])) return std::nullopt;
      got.push_back(key[i]);
    } else if (pat[i] != key[i]) {
      return std::nullopt;
    }
  }
  if (pat.size() != key.size()) return std::nullopt;
  return got;
}

std::string fill(const std::vector<std::string>& pat, const std::vector<std::string>& vals) {
  std::string out;
  size_t v = 0;
  for (const auto& seg : pat) {
    if (!out.empty()) out += ".";
    out += (seg == "{i}" || seg == "{*}") ? vals.at(v++) : seg;
  }
  return out;
}

std::vector<std::string> placeholders(const std::string& pattern) {
  std::vector<std::string> out;
  for (const auto& seg : split(pattern))
    if (seg == "{i}" || seg == "{*}") out.push_back(seg);
  return out;
}

}  // namespace

KeyTable::KeyTable(std::string layout, std::vector<std::pair<std::string, std::string>> rules)
    : layout_(std::move(layout)) {
  for (const auto& [ours, theirs] : rules) {
    TORCH_CHECK(placeholders(ours) == placeholders(theirs), "KeyTable ", layout_, ": rule '",
                ours, "' <-> '", theirs, "' has different placeholders on its two sides");
    rules_.push_back({split(ours), split(theirs)});
  }
}

std::string KeyTable::rename(const std::string& key, bool forward,
                             const std::string& source) const {
  const auto parts = split(key);
  for (const auto& [ours, theirs] : rules_) {
    const auto& from = forward ? ours : theirs;
    const auto& to = forward ? theirs : ours;
    if (auto vals = match(from, parts)) return fill(to, *vals);
  }
  TORCH_CHECK(false, source.empty() ? "" : source + ": ", "key '", key, "' maps to nothing in ",
              forward ? "the " + layout_ + " layout" : "our layout (read as " + layout_ + ")");
}

std::string KeyTable::to_foreign(const std::string& key, const std::string& source) const {
  return rename(key, true, source);
}
std::string KeyTable::to_ours(const std::string& key, const std::string& source) const {
  return rename(key, false, source);
}

core::TensorMap KeyTable::rename_all(const core::TensorMap& sd, bool forward,
                                     const std::string& source) const {
  core::TensorMap out;
  std::map<std::string, std::string> origin;
  for (const auto& [k, v] : sd) {
    auto name = rename(k, forward, source);
    auto [it, fresh] = origin.emplace(name, k);
    TORCH_CHECK(fresh, source.empty() ? "" : source + ": ", "keys '", it->second, "' and '", k,
                "' both map to '", name, "' (", layout_, ")");
    out.emplace(std::move(name), v);
  }
  return out;
}

core::TensorMap KeyTable::to_foreign(const core::TensorMap& sd, const std::string& source) const {
  return rename_all(sd, true, source);
}
core::TensorMap KeyTable::to_ours(const core::TensorMap& sd, const std::string& source) const {
  return rename_all(sd, false, source);
}

}  // namespace causvid::models
