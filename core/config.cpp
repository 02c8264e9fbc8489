// core/config.cpp: see config.h. One table (kFields) describes every key: its YAML type,
// section, doc line and whether it is required; parsing, overrides, saving, equality and
// --list-keys all walk it, so a new key is one line there plus a member in Config.
#include "core/config.h"

#include <c10/util/Exception.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <set>
#include <sstream>

#include "core/config_keys.h"
#include "core/fs.h"
#include "core/utf8.h"
#include "core/log.h"

namespace causvid::core {
namespace {

using namespace config_detail;

std::string suggestion(const std::string& key) {
  std::string best;
  int best_d = 1 << 30;
  auto consider = [&](const std::string& name) {
    int d = edit_distance(key, name);
    if (d < best_d) {
      best_d = d;
      best = name;
    }
  };
  for (const auto& f : fields()) consider(f.name);
  for (const auto& a : aliases()) consider(a.first);
  // About one edit per three characters; never a suggestion that replaces the whole key.
  int limit = std::max<int>(1, static_cast<int>(key.size()) / 3);
  if (best_d > limit || best_d >= static_cast<int>(key.size())) return "";
  return " (did you mean '" + best + "'?)";
}

// A node as it would read in flow YAML, shortened, for "got ..." in messages.
std::string describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "null";
  std::string s;
  if (n.IsScalar()) {
    s = "'" + n.Scalar() + "'";
  } else {
    YAML::Emitter e;
    e << YAML::Flow << n;
    s = e.c_str();
  }
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

std::string where(const std::string& source, const YAML::Node& n) {
  YAML::Mark m = n.Mark();
  if (m.is_null() || m.line < 0) return source;
  return source + ":" + std::to_string(m.line + 1);
}

// Sets one key; `source` names the file (or --set) in messages.
void set_key(Config& c, const std::string& key, const YAML::Node& value,
             const std::string& source, const std::string& loc) {
  std::string name = key;
  auto a = aliases().find(key);
  if (a != aliases().end()) name = a->second;
  const FieldDef* f = find_field(name);
  TORCH_CHECK(f, source, ": unknown key '", key, "'", suggestion(key));
  try {
    f->set(c, value);
  } catch (const BadValue& bad) {
    TORCH_CHECK(false, loc, ": key '", key, "': got ", describe(value), ", want ", f->want,
                bad.detail.empty() ? "" : " (" + bad.detail + ")");
  }
}

// Self-Forcing's trainer + distribution_loss -> our distillation_loss (train.py's choice of
// trainer class and distillation.py's choice of model class).
void resolve_stage_keys(Config& c, std::set<std::string>& seen) {
  const bool explicit_stage = seen.count("distillation_loss") > 0;
  const std::string& src = c.source;
  std::string stage;
  if (c.trainer == "score_distillation") {
    if (c.distribution_loss == "dmd") stage = "self_forcing";
    else if (c.distribution_loss == "causvid") stage = "dmd";
    else
      TORCH_CHECK(false, src, ": key 'distribution_loss': got '", c.distribution_loss,
                  "', want dmd (Self-Forcing) | causvid (CausVid's DMD)",
                  c.distribution_loss == "sid" ? "; SiD is not implemented" : "");
  } else if (c.trainer == "ode") {
    stage = "ode";
  } else if (c.trainer == "diffusion") {
    stage = c.generator_model() == "causal_wan" || c.causal.value_or(false) ? "teacher_forcing"
                                                                             : "diffusion";
  } else {
    TORCH_CHECK(false, src, ": key 'trainer': got '", c.trainer,
                "', want score_distillation | ode | diffusion",
                c.trainer == "gan" ? " (the GAN trainer is not implemented)" : "");
  }
  TORCH_CHECK(!explicit_stage || c.distillation_loss == stage, src,
              ": key 'distillation_loss': got '", c.distillation_loss, "', but trainer '",
              c.trainer, "'", c.distribution_loss.empty() ? "" : " with distribution_loss '" +
              c.distribution_loss + "'", " selects '", stage, "'; give one of the two");
  c.distillation_loss = stage;
  seen.insert("distillation_loss");
  // Self-Forcing's model classes, where the config leaves our model keys out: its generator
  // is always a CausalWanModel (model/base.py is_causal=True; `causal` is its flag), its
  // real and fake scores bidirectional WanModels.
  const bool causal_gen = stage == "self_forcing" || stage == "teacher_forcing" ||
                          c.causal.value_or(false);
  if (!seen.count("model_name")) {
    c.model_name = "wan";
    seen.insert("model_name");
  }
  if (causal_gen && !seen.count("generator_name")) c.generator_name = "causal_wan";
  if (!seen.count("generator_task")) {
    c.generator_task = c.generator_model() == "causal_wan" ? "causal_video" : "bidirectional_video";
    seen.insert("generator_task");
  }
  if (!seen.count("real_task_type")) c.real_task_type = "bidirectional_video";
  if (!seen.count("fake_task_type")) c.fake_task_type = "bidirectional_video";
}

void log_ignored(const std::string& source, const std::vector<std::string>& ignored) {
  if (ignored.empty()) return;
  std::string keys;
  for (const auto& k : ignored) keys += (keys.empty() ? "" : ", ") + k;
  LOG_INFO("%s: ignoring %s (no wandb in causvid-cpp; metrics go to metrics.jsonl)", source,
           keys);
}

}  // namespace

// ------------------------------------------------------------------ accessors

const std::string& Config::generator_model() const {
  return generator_name.empty() ? model_name : generator_name;
}
const std::string& Config::real_model() const {
  static const std::string kBidirectional = "wan";
  if (real_name_is_release()) return kBidirectional;  // Self-Forcing: a bidirectional Wan2.1
  return real_name.empty() ? model_name : real_name;
}
const std::string& Config::fake_model() const { return fake_name.empty() ? model_name : fake_name; }
const std::string& Config::real_task() const {
  return real_task_type.empty() ? generator_task : real_task_type;
}
const std::string& Config::fake_task() const {
  return fake_task_type.empty() ? generator_task : fake_task_type;
}

std::string Config::dit_file() const { return dit_path.empty() ? wan_model_dir : dit_path; }
std::string Config::real_dit_file() const {
  if (!real_dit_path.empty()) return real_dit_path;
  if (!real_name_is_release() || dit_path == "random") return dit_file();
  const auto slash = wan_model_dir.find_last_of('/');
  return (slash == std::string::npos ? std::string() : wan_model_dir.substr(0, slash + 1)) +
         real_name;
}
double Config::generator_scheduler_shift() const {
  auto it = model_kwargs.find("timestep_shift");
  return it == model_kwargs.end() ? scheduler_shift : it->second;
}
std::pair<int64_t, int64_t> Config::attention_window() const {
  if (long_window > 0) return {long_window, long_sink};
  auto la = model_kwargs.find("local_attn_size");
  if (la == model_kwargs.end() || la->second <= 0) return {-1, 0};
  auto sk = model_kwargs.find("sink_size");
  const int64_t sink = sk == model_kwargs.end() ? 0 : static_cast<int64_t>(sk->second);
  return {static_cast<int64_t>(la->second) - sink, sink};
}

int Config::accumulation_steps(int world_size) const {
  if (total_batch_size <= 0) return 1;
  const int64_t per_update = static_cast<int64_t>(batch_size) * world_size;
  TORCH_CHECK(total_batch_size % per_update == 0, source, ": key 'total_batch_size': got ",
              total_batch_size, ", want a multiple of batch_size (", batch_size,
              ") x world size (", world_size, ") = ", per_update,
              " (the update accumulates total_batch_size / that many micro-batches)");
  return static_cast<int>(total_batch_size / per_update);
}
std::string Config::text_encoder_file() const {
  return text_encoder_path.empty() ? wan_model_dir + "/models_t5_umt5-xxl-enc-bf16.pth"
                                   : text_encoder_path;
}
std::string Config::tokenizer_dir() const {
  return tokenizer_path.empty() ? wan_model_dir + "/google/umt5-xxl" : tokenizer_path;
}
Config::Lora Config::lora() const {
  Lora l{lora_rank, lora_alpha, lora_dropout, lora_target_modules, lora_critic};
  auto num = [&](const char* k, double fallback) {
    auto it = adapter.find(k);
    if (it == adapter.end()) return fallback;
    try {
      size_t used = 0;
      double v = std::stod(it->second, &used);
      if (used == it->second.size()) return v;
    } catch (const std::exception&) {
    }
    TORCH_CHECK(false, source, ": key 'adapter': ", k, " '", it->second, "' is not a number");
  };
  if (!adapter.empty()) {
    auto type = adapter.find("type");
    TORCH_CHECK(type == adapter.end() || type->second == "lora", source, ": key 'adapter': type '",
                type->second, "', want lora");
    for (const auto& kv : adapter)
      TORCH_CHECK(kv.first == "type" || kv.first == "rank" || kv.first == "alpha" ||
                      kv.first == "dropout" || kv.first == "dtype" || kv.first == "verbose" ||
                      kv.first == "apply_to_critic",
                  source, ": key 'adapter': unknown entry '", kv.first,
                  "' (want type, rank, alpha, dropout, dtype, verbose, apply_to_critic)");
    l.rank = static_cast<int>(num("rank", l.rank));
    l.alpha = num("alpha", l.alpha);
    l.dropout = num("dropout", l.dropout);
    // LongLive: getattr(adapter, "apply_to_critic", True).
    auto crit = adapter.find("apply_to_critic");
    if (crit == adapter.end()) {
      l.critic = true;
    } else {
      TORCH_CHECK(crit->second == "true" || crit->second == "false", source,
                  ": key 'adapter': apply_to_critic '", crit->second, "', want true or false");
      l.critic = crit->second == "true";
    }
  }
  return l;
}

std::string Config::vae_file() const {
  return vae_path.empty() ? wan_model_dir + "/Wan2.1_VAE.pth" : vae_path;
}
std::string Config::checkpoint_root() const {
  return checkpoint_dir.empty() ? output_path : checkpoint_dir;
}

// ------------------------------------------------------------------ parse / overrides

Config parse_config(const std::string& yaml_text, const std::string& source) {
  check_utf8(yaml_text, source);
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    if (!e.mark.is_null())
      TORCH_CHECK(false, source, ":", e.mark.line + 1, ":", e.mark.column + 1,
                  ": malformed YAML: ", e.msg);
    TORCH_CHECK(false, source, ": malformed YAML: ", e.msg);
  }
  TORCH_CHECK(root.IsDefined() && !root.IsNull(), source,
              ": empty config, want a map of key: value");
  TORCH_CHECK(root.IsMap(), where(source, root), ": got ", describe(root),
              ", want a map of key: value at the top level");

  Config c;
  c.source = source;
  std::set<std::string> seen;  // canonical names
  std::vector<std::string> ignored, unused;
  for (const auto& kv : root) {
    TORCH_CHECK(kv.first.IsScalar(), where(source, kv.first), ": got key ",
                describe(kv.first), ", want a plain key name");
    const std::string key = kv.first.Scalar();
    std::string loc = where(source, kv.first);
    if (is_ignored_key(key)) {
      ignored.push_back(key);
      continue;
    }
    if (other_program_keys().count(key)) {
      TORCH_CHECK(key != "load_raw_video" || !kv.second.IsScalar() || kv.second.Scalar() == "false",
                  loc, ": key 'load_raw_video': got ", describe(kv.second),
                  ", want false (training from raw videos is not supported; precompute latents "
                  "with `causvid data encode`)");
      unused.push_back(key);
      continue;
    }
    auto a = aliases().find(key);
    std::string name = a == aliases().end() ? key : a->second;
    TORCH_CHECK(!seen.count(name), loc, ": key '", key, "' given twice",
                name != key ? " (alias of '" + name + "')" : std::string());
    seen.insert(name);
    set_key(c, key, kv.second, source, loc);
  }
  log_ignored(source, ignored);
  if (!unused.empty()) {
    std::string keys;
    for (const auto& k : unused) keys += (keys.empty() ? "" : ", ") + k;
    LOG_INFO("%s: not used by causvid train: %s (Self-Forcing inference/GAN settings)", source,
             keys);
  }
  if (seen.count("trainer") && !c.trainer.empty()) resolve_stage_keys(c, seen);

  for (const auto& f : fields()) {
    bool needed = (f.required & kAlways) || ((f.required & kDmd) && c.is_dmd()) ||
                  ((f.required & kSteps) && c.distillation_loss != "teacher_forcing");
    TORCH_CHECK(!needed || seen.count(f.name), source, ": missing required key '", f.name,
                "' (want ", f.want, "; ", f.doc, ")",
                (f.required & kDmd) ? "; required when distillation_loss is dmd" : "");
  }
  return c;
}

Config read_config(const std::string& path) {
  TORCH_CHECK(file_exists(path), path, ": config file not found");
  return parse_config(read_file(path), path);
}

namespace {

// OmegaConf.merge(base, over) for plain YAML: maps merge key by key, anything else is
// replaced by `over`'s value.
YAML::Node merge_yaml(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsMap() || !over.IsMap()) return YAML::Clone(over);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : over) {
    const std::string k = kv.first.Scalar();
    out[k] = out[k].IsDefined() ? merge_yaml(out[k], kv.second) : YAML::Clone(kv.second);
  }
  return out;
}

YAML::Node load_yaml_file(const std::string& path) {
  TORCH_CHECK(file_exists(path), path, ": config file not found");
  const std::string text = read_file(path);  // names a directory or unreadable file
  check_utf8(text, path);
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    TORCH_CHECK(false, path, ":", e.mark.line + 1, ": malformed YAML: ", e.msg);
  }
}

}  // namespace

Config read_config(const std::string& path, const std::string& defaults_path) {
  std::string defaults = defaults_path;
  if (defaults == "auto") {
    defaults.clear();
    YAML::Node root = load_yaml_file(path);
    const auto slash = path.find_last_of('/');
    const std::string beside =
        (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) +
        "default_config.yaml";
    if (root.IsMap() && root["trainer"].IsDefined() && beside != path && file_exists(beside)) {
      LOG_INFO("%s: merged over %s (Self-Forcing's train.py does the same)", path, beside);
      defaults = beside;
    }
  }
  if (defaults.empty()) return read_config(path);
  YAML::Node base = load_yaml_file(defaults), over = load_yaml_file(path);
  TORCH_CHECK(base.IsMap(), defaults, ": want a map of key: value at the top level");
  TORCH_CHECK(over.IsMap(), path, ": want a map of key: value at the top level");
  YAML::Emitter e;
  e.SetOutputCharset(YAML::EmitNonAscii);
  e << merge_yaml(base, over);
  return parse_config(e.c_str(), path + " (over " + defaults + ")");
}

void apply_overrides(Config& config, const std::vector<std::string>& overrides) {
  std::vector<std::string> ignored;
  for (const auto& ov : overrides) {
    std::string src = "--set " + ov;
    auto eq = ov.find('=');
    TORCH_CHECK(eq != std::string::npos && eq > 0, src, ": want key=value");
    std::string key = ov.substr(0, eq);
    std::string text = ov.substr(eq + 1);
    if (is_ignored_key(key)) {
      ignored.push_back(key);
      continue;
    }
    TORCH_CHECK(find_field(key) || aliases().count(key), "--set: unknown key '", key, "'",
                suggestion(key));
    YAML::Node value;
    try {
      value = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      TORCH_CHECK(false, src, ": malformed YAML value: ", e.msg);
    }
    set_key(config, key, value, "--set", src);
  }
  log_ignored("--set", ignored);
  // A --set of Self-Forcing's stage keys selects the stage again (as in a file).
  for (const auto& ov : overrides) {
    const std::string key = ov.substr(0, ov.find('='));
    if ((key == "trainer" || key == "distribution_loss") && !config.trainer.empty()) {
      std::set<std::string> seen = {"model_name", "generator_name", "generator_task",
                                    "real_task_type", "fake_task_type"};
      resolve_stage_keys(config, seen);
      break;
    }
  }
}

Config load_config(const std::string& path, const std::vector<std::string>& overrides,
                   const std::string& defaults_path) {
  Config c = read_config(path, defaults_path);
  apply_overrides(c, overrides);
  c.validate();
  return c;
}

// ------------------------------------------------------------------ save

std::string config_to_yaml(const Config& config) {
  YAML::Emitter e;
  e.SetOutputCharset(YAML::EmitNonAscii);
  e << YAML::Comment("causvid-cpp config, resolved from " + config.source);
  e << YAML::BeginMap;
  std::string section;
  for (const auto& f : fields()) {
    if (!f.present(config)) continue;
    if (f.section != section) {
      section = f.section;
      e << YAML::Newline << YAML::Comment("---- " + section);
    }
    e << YAML::Key << f.name << YAML::Value;
    f.emit(config, e);
  }
  e << YAML::EndMap;
  TORCH_CHECK(e.good(), "config_to_yaml: emitter error: ", e.GetLastError());
  return std::string(e.c_str()) + "\n";
}

void save_config(const Config& config, const std::string& path) {
  write_file_atomic(path, config_to_yaml(config));
}

bool operator==(const Config& a, const Config& b) {
  for (const auto& f : fields())
    if (!f.equal(a, b)) return false;
  return true;
}

std::vector<ConfigKeyInfo> config_keys() {
  Config defaults;
  std::vector<ConfigKeyInfo> out;
  for (const auto& f : fields()) {
    ConfigKeyInfo k;
    k.name = f.name;
    k.section = f.section;
    k.type = f.want;
    k.doc = f.doc;
    k.required_ode = f.required & (kAlways | kSteps);
    k.required_dmd = f.required & (kAlways | kDmd | kSteps);
    YAML::Emitter e;
    e.SetOutputCharset(YAML::EmitNonAscii);
    f.emit(defaults, e);
    k.default_value = e.c_str();
    out.push_back(std::move(k));
  }
  return out;
}

int edit_distance(const std::string& a, const std::string& b) {
  // Optimal string alignment distance: insert, delete, substitute, swap adjacent.
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

}  // namespace causvid::core
