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

#include "core/fs.h"
#include "core/log.h"

namespace causvid::core {
namespace {

// ------------------------------------------------------------------ value conversion

// Thrown by Conv<T>::parse when a node does not hold a T; the caller adds key and source.
struct BadValue {
  std::string detail;  // optional, e.g. "element 2"
};

// Shortest decimal that reads back to the same double, always with a '.' in the mantissa
// so that YAML 1.1 readers (PyYAML, OmegaConf) also see a float: "8.0", "2.0e-06", "0.999".
std::string format_double(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {  // 10.0, not 1.0e+01
    std::snprintf(buf, sizeof(buf), "%.1f", v);
    return buf;
  }
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  if (s.find_first_of("ni") != std::string::npos) return s;
  size_t e = s.find_first_of("eE");
  std::string mantissa = s.substr(0, e);
  if (mantissa.find('.') == std::string::npos) mantissa += ".0";
  return e == std::string::npos ? mantissa : mantissa + s.substr(e);
}

template <class T>
struct Conv;

template <>
struct Conv<bool> {
  static std::string want() { return "a boolean (true or false)"; }
  static bool parse(const YAML::Node& n) {
    bool v = false;
    if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) throw BadValue{};
    return v;
  }
  static void emit(YAML::Emitter& e, bool v) { e << v; }
};

template <>
struct Conv<int> {
  static std::string want() { return "an integer"; }
  static int parse(const YAML::Node& n) {
    int v = 0;
    if (!n.IsScalar() || !YAML::convert<int>::decode(n, v)) throw BadValue{};
    return v;
  }
  static void emit(YAML::Emitter& e, int v) { e << v; }
};

template <>
struct Conv<int64_t> {
  static std::string want() { return "an integer"; }
  static int64_t parse(const YAML::Node& n) {
    long long v = 0;
    if (!n.IsScalar() || !YAML::convert<long long>::decode(n, v)) throw BadValue{};
    return static_cast<int64_t>(v);
  }
  static void emit(YAML::Emitter& e, int64_t v) { e << static_cast<long long>(v); }
};

template <>
struct Conv<double> {
  static std::string want() { return "a number"; }
  static double parse(const YAML::Node& n) {
    double v = 0;
    if (!n.IsScalar() || !YAML::convert<double>::decode(n, v)) throw BadValue{};
    return v;
  }
  static void emit(YAML::Emitter& e, double v) { e << format_double(v); }
};

template <>
struct Conv<std::string> {
  static std::string want() { return "a string"; }
  static std::string parse(const YAML::Node& n) {
    if (n.IsNull()) return "";  // `key:` or `key: null` = empty
    if (!n.IsScalar()) throw BadValue{};
    return n.Scalar();
  }
  // Always double-quoted so values like "null", "true" or "123" read back as strings.
  static void emit(YAML::Emitter& e, const std::string& v) { e << YAML::DoubleQuoted << v; }
};

template <>
struct Conv<std::vector<int>> {
  static std::string want() { return "a list of integers"; }
  static std::vector<int> parse(const YAML::Node& n) {
    if (!n.IsSequence()) throw BadValue{};
    std::vector<int> out;
    for (size_t i = 0; i < n.size(); ++i) {
      try {
        out.push_back(Conv<int>::parse(n[i]));
      } catch (const BadValue&) {
        throw BadValue{"element " + std::to_string(i) + " is not an integer"};
      }
    }
    return out;
  }
  static void emit(YAML::Emitter& e, const std::vector<int>& v) {
    e << YAML::Flow << YAML::BeginSeq;
    for (int x : v) e << x;
    e << YAML::EndSeq;
  }
};

template <>
struct Conv<std::map<std::string, bool>> {
  static std::string want() { return "a map of submodule name to true/false (e.g. {model: true})"; }
  static std::map<std::string, bool> parse(const YAML::Node& n) {
    if (!n.IsMap()) throw BadValue{};
    std::map<std::string, bool> out;
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) throw BadValue{"a submodule name is not a string"};
      std::string k = kv.first.Scalar();
      try {
        out[k] = Conv<bool>::parse(kv.second);
      } catch (const BadValue&) {
        throw BadValue{"'" + k + "' is not true/false"};
      }
    }
    return out;
  }
  static void emit(YAML::Emitter& e, const std::map<std::string, bool>& v) {
    e << YAML::Flow << YAML::BeginMap;
    for (const auto& kv : v) e << YAML::Key << kv.first << YAML::Value << kv.second;
    e << YAML::EndMap;
  }
};

// Maps of name -> number (model_kwargs) and name -> integer (size overrides).
template <class V>
struct Conv<std::map<std::string, V>> {
  static std::string want() { return "a map of name to " + Conv<V>::want().substr(Conv<V>::want().find(' ') + 1); }
  static std::map<std::string, V> parse(const YAML::Node& n) {
    if (n.IsNull()) return {};
    if (!n.IsMap()) throw BadValue{};
    std::map<std::string, V> out;
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) throw BadValue{"a name is not a string"};
      std::string k = kv.first.Scalar();
      try {
        out[k] = Conv<V>::parse(kv.second);
      } catch (const BadValue&) {
        throw BadValue{"'" + k + "' is not " + Conv<V>::want()};
      }
    }
    return out;
  }
  static void emit(YAML::Emitter& e, const std::map<std::string, V>& v) {
    e << YAML::Flow << YAML::BeginMap;
    for (const auto& kv : v) {
      e << YAML::Key << kv.first << YAML::Value;
      Conv<V>::emit(e, kv.second);
    }
    e << YAML::EndMap;
  }
};

template <class T>
struct Conv<std::optional<T>> {
  static std::string want() { return Conv<T>::want() + " or null"; }
  static std::optional<T> parse(const YAML::Node& n) {
    if (n.IsNull()) return std::nullopt;
    return Conv<T>::parse(n);
  }
  static void emit(YAML::Emitter& e, const std::optional<T>& v) {
    if (v) Conv<T>::emit(e, *v);
    else e << YAML::Null;
  }
};

template <class T>
bool is_present(const T&) { return true; }
template <class T>
bool is_present(const std::optional<T>& v) { return v.has_value(); }

// ------------------------------------------------------------------ the key table

enum Required { kOptional = 0, kAlways = 1, kDmd = 2 };

struct FieldDef {
  std::string name, section, want, doc;
  int required = kOptional;
  std::function<void(Config&, const YAML::Node&)> set;  // throws BadValue
  std::function<void(const Config&, YAML::Emitter&)> emit;
  std::function<bool(const Config&)> present;
  std::function<bool(const Config&, const Config&)> equal;
};

template <class T>
FieldDef field(const char* section, const char* name, T Config::*member, const char* doc,
               int required = kOptional) {
  FieldDef f;
  f.name = name;
  f.section = section;
  f.want = Conv<T>::want();
  f.doc = doc;
  f.required = required;
  f.set = [member](Config& c, const YAML::Node& n) { c.*member = Conv<T>::parse(n); };
  f.emit = [member](const Config& c, YAML::Emitter& e) { Conv<T>::emit(e, c.*member); };
  f.present = [member](const Config& c) { return is_present(c.*member); };
  f.equal = [member](const Config& a, const Config& b) { return a.*member == b.*member; };
  return f;
}

// size: data table (every key: section, name, member, help, when required)
const std::vector<FieldDef>& fields() {
  using C = Config;
  static const std::vector<FieldDef> kFields = {
      field("run", "distillation_loss", &C::distillation_loss,
            "training stage: ode (ODE regression) | dmd (distribution matching) | diffusion "
            "(flow-matching pretraining of a teacher) | self_forcing (DMD on the generator's own "
            "rollout) | teacher_forcing (causal diffusion with clean context); Self-Forcing "
            "configs give trainer + distribution_loss instead",
            kAlways),
      field("run", "mixed_precision", &C::mixed_precision, "bf16 parameters and compute"),
      field("run", "seed", &C::seed, "base seed (rank r uses seed + r); 0 = random, as CausVid"),
      field("run", "device", &C::device, "auto | cpu | cuda | cuda:N"),
      field("run", "output_path", &C::output_path, "run output directory"),
      field("run", "checkpoint_dir", &C::checkpoint_dir, "\"\" = <output_path> (checkpoint_model_<step>/ go there)"),
      field("run", "resume", &C::resume, "\"\" = fresh start, auto = latest checkpoint, or a step dir"),
      field("run", "log_iters", &C::log_iters, "steps between metric lines", kAlways),
      field("run", "save_iters", &C::save_iters, "steps between checkpoints; 0 = log_iters"),
      field("run", "max_iters", &C::max_iters, "total steps; 0 = until killed"),
      field("run", "keep_latest", &C::keep_latest, "checkpoints kept; 0 = all"),
      field("run", "max_nonfinite_skips", &C::max_nonfinite_skips,
            "consecutive updates skipped for a non-finite gradient before the run stops"),
      field("run", "preempt_grace_s", &C::preempt_grace_s,
            "SIGTERM/SIGUSR1: seconds to finish the step and checkpoint before exiting 1"),

      field("models", "model_name", &C::model_name,
            "wan | causal_wan: default of the three models, and the text encoder/VAE family",
            kAlways),
      field("models", "generator_name", &C::generator_name, "generator model; \"\" = model_name"),
      field("models", "real_name", &C::real_name, "teacher (real score) model; \"\" = model_name"),
      field("models", "fake_name", &C::fake_name, "critic (fake score) model; \"\" = model_name"),
      field("models", "generator_ckpt", &C::generator_ckpt,
            "generator init checkpoint (its 'generator' state dict); \"\" = base weights"),
      field("models", "generator_grad", &C::generator_grad, "trainable submodules of the generator"),
      field("models", "real_score_grad", &C::real_score_grad, "trainable submodules of the teacher"),
      field("models", "fake_score_grad", &C::fake_score_grad, "trainable submodules of the critic"),
      field("models", "gradient_checkpointing", &C::gradient_checkpointing,
            "recompute DiT blocks in backward (generator and critic)"),
      field("models", "num_frame_per_block", &C::num_frame_per_block,
            "latent frames per causal block"),
      field("models", "model_preset", &C::model_preset,
            "DiT sizes: wan-1.3b | wan-14b | wan-mid | tiny | toy"),
      field("models", "model_dim", &C::model_dim, "override of the preset's dim"),
      field("models", "model_ffn_dim", &C::model_ffn_dim, "override of the preset's ffn_dim"),
      field("models", "model_freq_dim", &C::model_freq_dim, "override of the preset's freq_dim"),
      field("models", "model_num_heads", &C::model_num_heads, "override of the preset's num_heads"),
      field("models", "model_num_layers", &C::model_num_layers,
            "override of the preset's num_layers"),
      field("models", "model_in_dim", &C::model_in_dim, "override of the preset's in_dim"),
      field("models", "model_out_dim", &C::model_out_dim, "override of the preset's out_dim"),
      field("models", "model_text_dim", &C::model_text_dim, "override of the preset's text_dim"),
      field("models", "model_text_len", &C::model_text_len, "override of the preset's text_len"),
      field("models", "wan_model_dir", &C::wan_model_dir, "Wan2.1 release folder"),
      field("models", "dit_path", &C::dit_path,
            "base DiT weights; \"\" = wan_model_dir; \"random\" = Wan's init_weights (tests, from scratch)"),
      field("models", "text_encoder_path", &C::text_encoder_path,
            "umT5 weights; \"\" = <wan_model_dir>/models_t5_umt5-xxl-enc-bf16.pth"),
      field("models", "tokenizer_path", &C::tokenizer_path,
            "umT5 tokenizer; \"\" = <wan_model_dir>/google/umt5-xxl"),
      field("models", "vae_path", &C::vae_path, "VAE weights; \"\" = <wan_model_dir>/Wan2.1_VAE.pth"),
      field("models", "prompt_cache", &C::prompt_cache,
            "precomputed text embeddings; \"\" = run the text encoder"),

      field("diffusion", "generator_task", &C::generator_task,
            "bidirectional_video | causal_video", kAlways),
      field("diffusion", "real_task_type", &C::real_task_type, "\"\" = generator_task"),
      field("diffusion", "fake_task_type", &C::fake_task_type, "\"\" = generator_task"),
      field("diffusion", "denoising_step_list", &C::denoising_step_list,
            "generator timesteps, descending (causal: ending with 0)", kAlways),
      field("diffusion", "warp_denoising_step", &C::warp_denoising_step,
            "map denoising_step_list through the shifted scheduler timesteps"),
      field("diffusion", "num_train_timestep", &C::num_train_timestep,
            "timestep range of the DMD/critic noise", kDmd),
      field("diffusion", "timestep_shift", &C::timestep_shift,
            "shift applied to sampled DMD/critic timesteps"),
      field("diffusion", "scheduler_shift", &C::scheduler_shift,
            "shift of the wrappers' flow-matching grid, the step-list warp and the samplers "
            "(CausVid hard-codes 8)"),
      field("diffusion", "real_guidance_scale", &C::real_guidance_scale,
            "teacher CFG scale (alias: guidance_scale)", kDmd),
      field("diffusion", "denoising_loss_type", &C::denoising_loss_type,
            "critic loss: flow | x0", kDmd),
      field("diffusion", "dfake_gen_update_ratio", &C::dfake_gen_update_ratio,
            "critic steps per generator step", kDmd),
      field("diffusion", "image_or_video_shape", &C::image_or_video_shape,
            "generated latents [B, F, C, H, W] (B is replaced by the batch size)", kDmd),
      field("diffusion", "text_dropout", &C::text_dropout,
            "diffusion stage: probability of training a sample on the negative prompt (for CFG)"),
      field("diffusion", "backward_simulation", &C::backward_simulation,
            "simulate generator inputs from noise (prompts only); false = noise ODE latents"),
      field("diffusion", "negative_prompt", &C::negative_prompt,
            "prompt of the unconditional CFG branch", kDmd),

      field("optimizer", "lr", &C::lr, "generator learning rate (AdamW)", kAlways),
      field("optimizer", "beta1", &C::beta1, "AdamW beta1"),
      field("optimizer", "beta2", &C::beta2, "AdamW beta2"),
      field("optimizer", "weight_decay", &C::weight_decay, "AdamW weight decay"),
      field("optimizer", "lr_critic", &C::lr_critic, "critic learning rate; null = lr"),
      field("optimizer", "beta1_critic", &C::beta1_critic, "critic beta1; null = beta1"),
      field("optimizer", "beta2_critic", &C::beta2_critic, "critic beta2; null = beta2"),
      field("optimizer", "grad_clip", &C::grad_clip, "max gradient norm"),
      field("optimizer", "ema_weight", &C::ema_weight, "generator EMA decay; 0 = no EMA"),
      field("optimizer", "ema_start_step", &C::ema_start_step, "first step with EMA updates"),

      field("fsdp", "sharding_strategy", &C::sharding_strategy,
            "full | hybrid_full | hybrid_zero2 | no_shard"),
      field("fsdp", "generator_fsdp_wrap_strategy", &C::generator_fsdp_wrap_strategy,
            "size | transformer"),
      field("fsdp", "real_score_fsdp_wrap_strategy", &C::real_score_fsdp_wrap_strategy,
            "size | transformer"),
      field("fsdp", "fake_score_fsdp_wrap_strategy", &C::fake_score_fsdp_wrap_strategy,
            "size | transformer"),
      field("fsdp", "generator_fsdp_transformer_module", &C::generator_fsdp_transformer_module,
            "block class for wrap strategy transformer"),
      field("fsdp", "real_score_fsdp_transformer_module", &C::real_score_fsdp_transformer_module,
            "block class for wrap strategy transformer"),
      field("fsdp", "fake_score_fsdp_transformer_module", &C::fake_score_fsdp_transformer_module,
            "block class for wrap strategy transformer"),
      field("fsdp", "text_encoder_fsdp_wrap_strategy", &C::text_encoder_fsdp_wrap_strategy,
            "size | transformer (the frozen umT5, sharded when the run encodes text live)"),
      field("fsdp", "text_encoder_fsdp_transformer_module",
            &C::text_encoder_fsdp_transformer_module, "block class for wrap strategy transformer"),

      field("self_forcing", "trainer", &C::trainer,
            "Self-Forcing's stage key: score_distillation | ode | diffusion (sets distillation_loss)"),
      field("self_forcing", "distribution_loss", &C::distribution_loss,
            "with trainer score_distillation: dmd (self_forcing stage) | causvid (dmd stage)"),
      field("self_forcing", "same_step_across_blocks", &C::same_step_across_blocks,
            "one exit step for all blocks of a rollout (false: one per block)"),
      field("self_forcing", "last_step_only", &C::last_step_only,
            "always exit at the last denoising step"),
      field("self_forcing", "context_noise", &C::context_noise,
            "timestep of the noise added to a clean block before it is cached"),
      field("self_forcing", "independent_first_frame", &C::independent_first_frame,
            "a 1-frame first block (not supported: must be false)"),
      field("self_forcing", "num_training_frames", &C::num_training_frames,
            "frames a self-forcing rollout generates (>= image_or_video_shape[1])"),
      field("self_forcing", "ts_schedule", &C::ts_schedule,
            "DMD/critic timesteps drawn above the exit step's lower end"),
      field("self_forcing", "ts_schedule_max", &C::ts_schedule_max,
            "... and below its upper end"),
      field("self_forcing", "min_score_timestep", &C::min_score_timestep,
            "lowest DMD/critic timestep drawn without ts_schedule"),
      field("self_forcing", "fake_guidance_scale", &C::fake_guidance_scale,
            "CFG scale of the critic in the DMD gradient (0 = none)"),
      field("self_forcing", "i2v", &C::i2v,
            "image-to-video: the data's first clean latent frame starts every rollout"),
      field("self_forcing", "total_batch_size", &C::total_batch_size,
            "samples per update over all ranks (gradient accumulation); 0 = batch_size x world"),
      field("self_forcing", "causal", &C::causal,
            "Self-Forcing's flag; must agree with the generator's task"),
      field("self_forcing", "model_kwargs", &C::model_kwargs,
            "generator wrapper arguments: timestep_shift, local_attn_size, sink_size"),
      field("self_forcing", "max_grad_norm_generator", &C::max_grad_norm_generator,
            "generator clip norm; null = grad_clip"),
      field("self_forcing", "max_grad_norm_critic", &C::max_grad_norm_critic,
            "critic clip norm; null = grad_clip"),
      field("self_forcing", "real_model_preset", &C::real_model_preset,
            "real score sizes: a model_preset; \"\" = the generator's"),
      field("self_forcing", "real_model_overrides", &C::real_model_overrides,
            "real score size overrides: dim, ffn_dim, freq_dim, num_heads, num_layers"),
      field("self_forcing", "real_dit_path", &C::real_dit_path,
            "real score weights; \"\" = wan_models/<real_name> for a Wan2.1 name, else dit_path"),
      field("self_forcing", "long_rollout_frames", &C::long_rollout_frames,
            "long tuning: frames rolled out per step (0 = num_training_frames)"),
      field("self_forcing", "long_window", &C::long_window,
            "long tuning: attention window in frames of the rolling KV cache (0 = whole rollout)"),
      field("self_forcing", "long_sink", &C::long_sink,
            "long tuning: sink frames kept in the KV cache"),

      field("data", "data_path", &C::data_path,
            "ODE-pair LMDB, or a prompt file when backward_simulation", kAlways),
      field("data", "batch_size", &C::batch_size, "samples per rank per step", kAlways),
      field("data", "max_pair", &C::max_pair, "ODE pairs used from the LMDB"),
      field("data", "num_workers", &C::num_workers, "data loader threads"),
  };
  return kFields;
}

// Other names accepted for a key (Self-Forcing's spelling).
const std::map<std::string, std::string>& aliases() {
  static const std::map<std::string, std::string> kAliases = {
      {"guidance_scale", "real_guidance_scale"},
  };
  return kAliases;
}

const FieldDef* find_field(const std::string& name) {
  for (const auto& f : fields())
    if (f.name == name) return &f;
  return nullptr;
}

bool is_ignored_key(const std::string& key) { return key.rfind("wandb_", 0) == 0; }

// Keys of Self-Forcing's configs/default_config.yaml that belong to its inference.py (the
// prompt list and video size of its evaluation) or to its GAN trainer; `causvid train`
// reads them without using them (one notice line), `causvid generate` has flags for them.
const std::set<std::string>& other_program_keys() {
  static const std::set<std::string> k = {
      "ckpt_step", "prompt_name", "prompt_path", "eval_first_n", "num_samples", "height",
      "width", "num_frames", "gc_interval", "discriminator_lr_multiplier", "load_raw_video"};
  return k;
}

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
void resolve_stage_keys(Config& c, bool explicit_stage) {
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
std::string Config::vae_file() const {
  return vae_path.empty() ? wan_model_dir + "/Wan2.1_VAE.pth" : vae_path;
}
std::string Config::checkpoint_root() const {
  return checkpoint_dir.empty() ? output_path : checkpoint_dir;
}

// ------------------------------------------------------------------ parse / overrides

Config parse_config(const std::string& yaml_text, const std::string& source) {
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
  if (seen.count("trainer")) {
    resolve_stage_keys(c, seen.count("distillation_loss") > 0);
    seen.insert("distillation_loss");
  }

  for (const auto& f : fields()) {
    bool needed = (f.required & kAlways) || ((f.required & kDmd) && c.is_dmd());
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
  try {
    return YAML::LoadFile(path);
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
    k.required_ode = f.required & kAlways;
    k.required_dmd = f.required & (kAlways | kDmd);
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
