// core/config_keys.cpp: the key table of core/config.h (config_keys.h): one FieldDef per
// YAML key with its type conversion (Conv<T>: parse, emit, the "want" text of messages),
// section, doc line and whether it is required. Parsing, overrides, saving, equality and
// --list-keys (config.cpp) all walk this table, so a new key is one line here plus a member
// in Config.
#include "core/config_keys.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace causvid::core::config_detail {
namespace {

// ------------------------------------------------------------------ value conversion


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
struct Conv<std::vector<std::string>> {
  static std::string want() { return "a list of names"; }
  static std::vector<std::string> parse(const YAML::Node& n) {
    if (n.IsNull()) return {};
    if (n.IsScalar()) return {n.Scalar()};
    if (!n.IsSequence()) throw BadValue{};
    std::vector<std::string> out;
    for (const auto& x : n) {
      if (!x.IsScalar()) throw BadValue{};
      out.push_back(x.Scalar());
    }
    return out;
  }
  static void emit(YAML::Emitter& e, const std::vector<std::string>& v) {
    e << YAML::Flow << YAML::BeginSeq;
    for (const auto& x : v) e << x;
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

}  // namespace

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
            "generator timesteps, descending (causal: ending with 0)", kSteps),
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
      field("optimizer", "lr_schedule", &C::lr_schedule,
            "constant | cosine (to lr_min_ratio * lr at max_iters) | wsd (warm-up, stable, "
            "linear decay over the last lr_decay_fraction of max_iters); scales lr and "
            "lr_critic alike"),
      field("optimizer", "lr_warmup_steps", &C::lr_warmup_steps,
            "linear warm-up steps (every schedule); 0 = none"),
      field("optimizer", "lr_decay_fraction", &C::lr_decay_fraction,
            "wsd: fraction of max_iters spent in the final decay (e.g. 0.25)"),
      field("optimizer", "lr_min_ratio", &C::lr_min_ratio, "cosine / wsd: final lr / lr"),
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
            "most frames a self-forcing rollout generates (>= image_or_video_shape[1]; longer ones re-encode the window start through the VAE)"),
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
            "samples per update over all ranks: gradient accumulation over total / (batch_size x "
            "world) micro-batches (the references read it but never accumulate); 0 = batch_size x world"),
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
      field("self_forcing", "teacher_forcing", &C::teacher_forcing,
            "teacher_forcing stage: clean context frames in the sequence (false: diffusion forcing)"),
      field("self_forcing", "noise_augmentation_max_timestep", &C::noise_augmentation_max_timestep,
            "teacher_forcing stage: noise the clean context, index in [this, 1000); 0 = none"),
      field("self_forcing", "long_rollout_frames", &C::long_rollout_frames,
            "long tuning: frames rolled out per step (0 = num_training_frames)"),
      field("self_forcing", "long_window", &C::long_window,
            "long tuning: attention window in frames of the rolling KV cache (0 = whole rollout)"),
      field("self_forcing", "long_sink", &C::long_sink,
            "long tuning: sink frames kept in the KV cache"),

      field("lora", "lora_rank", &C::lora_rank,
            "LoRA adapters on the generator's block linears, base frozen (0 = full fine-tune)"),
      field("lora", "lora_alpha", &C::lora_alpha, "LoRA alpha (0 = rank)"),
      field("lora", "lora_dropout", &C::lora_dropout, "dropout on the adapters' input"),
      field("lora", "lora_target_modules", &C::lora_target_modules,
            "linears with adapters: q, k, v, o, ffn.0, ffn.2, self_attn.q, ..., ffn, self_attn, cross_attn"),
      field("lora", "lora_critic", &C::lora_critic,
            "the critic trains LoRA adapters too (LongLive), else it is fully trained"),
      field("lora", "adapter", &C::adapter,
            "LongLive's adapter block {type: lora, rank, alpha, dropout, dtype, verbose}: sets "
            "the lora_* keys it names"),

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


}  // namespace causvid::core::config_detail
