// core/config_keys.h: the key table behind core/config.h, private to core (config.cpp,
// config_keys.cpp). Each FieldDef knows how to read its key from YAML, write it back, test
// presence and equality; fields() lists every key in the order of the saved YAML.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/config.h"

namespace causvid::core::config_detail {

// Thrown by Conv<T>::parse when a node does not hold a T; the caller adds key and source.
struct BadValue {
  std::string detail;  // optional, e.g. "element 2"
};

// kSteps: required by every stage that uses the denoising step list, i.e. all but
// teacher_forcing (Causal Forcing's AR-diffusion configs have none: that stage draws its
// timesteps from the whole grid; the list then only shapes its sample sheets).
enum Required { kOptional = 0, kAlways = 1, kDmd = 2, kSteps = 4 };

struct FieldDef {
  std::string name, section, want, doc;
  int required = kOptional;
  std::function<void(Config&, const YAML::Node&)> set;  // throws BadValue
  std::function<void(const Config&, YAML::Emitter&)> emit;
  std::function<bool(const Config&)> present;
  std::function<bool(const Config&, const Config&)> equal;
};

const std::vector<FieldDef>& fields();
// Other names accepted for a key (Self-Forcing's spelling).
const std::map<std::string, std::string>& aliases();
const FieldDef* find_field(const std::string& name);
// wandb_* keys: accepted and ignored.
bool is_ignored_key(const std::string& key);
// Keys of Self-Forcing's default_config.yaml that belong to its inference or GAN trainer.
const std::set<std::string>& other_program_keys();

}  // namespace causvid::core::config_detail
