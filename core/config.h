// core/config.h: the run configuration. YAML file (CausVid's keys plus our own) -> typed
// Config, `--set key=value` overrides, validate(), and save back to YAML.
//
// Ports the OmegaConf configs read by CausVid's causvid/train_ode.py,
// causvid/train_distillation.py, causvid/dmd.py, causvid/ode_regression.py and
// causvid/models/wan/causal_inference.py. Every key of CausVid's configs/wan_*.yaml loads
// unmodified; defaults are the getattr() defaults of that code (num_frame_per_block 1,
// backward_simulation true, timestep_shift 1.0, generator_name = model_name, ...).
// Deliberate differences from OmegaConf:
//   - unknown keys are errors naming the file and the closest known key;
//   - wandb_* keys are accepted and ignored (one notice line): there is no wandb here;
//   - values are type-checked on load; validate() checks cross-key consistency.
//   - keys from Self-Forcing (guandeh17/Self-Forcing configs) that fit a CausVid run are
//     ours too: lr_critic, beta1_critic, beta2_critic, weight_decay, ema_weight,
//     ema_start_step, and guidance_scale as an alias of real_guidance_scale.
//
//   Config c = load_config("configs/wan_causal_dmd.yaml", {"lr=1e-5"});  // validated
//   c.denoising_step_list; c.is_causal(); models::wan_config(c).dim;
//   save_config(c, out_dir + "/config.yaml");
//
// Every YAML key is a member of the same name. Optional members (std::optional) are left
// out of the saved YAML when unset; string members documented as "" = X are resolved by
// the accessor methods, so a `--set` of the key they derive from still takes effect.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace causvid::core {

struct Config {
  // ---------------------------------------------------------------- run
  // The stage: "ode" (train_ode.py) | "dmd" (train_distillation.py) | "diffusion" |
  // "self_forcing" (Self-Forcing's DMD on the generator's own rollout) | "teacher_forcing".
  // Self-Forcing configs name it with trainer + distribution_loss instead (see below).
  std::string distillation_loss = "dmd";
  bool mixed_precision = false;           // bf16 params/compute (CausVid's configs: true)
  int64_t seed = 0;                       // 0 = draw a random seed at start (as CausVid)
  std::string device = "auto";            // "auto" | "cpu" | "cuda" | "cuda:N"
  std::string output_path = "outputs";
  std::string checkpoint_dir;             // "" = <output_path>
  std::string resume;                     // "" = fresh, "auto" = latest in checkpoint_dir, or a step dir
  int log_iters = 200;                    // metrics line + (CausVid) checkpoint cadence
  int save_iters = 0;                     // 0 = every log_iters (as CausVid)
  int64_t max_iters = 0;                  // 0 = run until killed (as CausVid)
  int keep_latest = 0;                    // checkpoints kept; 0 = all
  // An update whose gradient norm is not finite is skipped (and counted); this many
  // consecutive skips stop the run with an error (the last checkpoint stays intact).
  int max_nonfinite_skips = 10;
  // SIGTERM / SIGUSR1 (preemption): finish the step, checkpoint, exit 0; a stop that takes
  // longer than this many seconds exits 1 instead (0 = no limit).
  double preempt_grace_s = 120;
  // ---------------------------------------------------------------- models
  std::string model_name = "wan";         // "wan" | "causal_wan"; text encoder/VAE family
  std::string generator_name;             // "" = model_name
  std::string real_name;                  // "" = model_name
  std::string fake_name;                  // "" = model_name
  std::string generator_ckpt;             // "" = init from dit_path; else a model.pt/safetensors with 'generator'
  std::map<std::string, bool> generator_grad = {{"model", true}};
  std::map<std::string, bool> real_score_grad = {{"model", false}};
  std::map<std::string, bool> fake_score_grad = {{"model", true}};
  bool gradient_checkpointing = false;
  int num_frame_per_block = 1;
  // Model sizes: a preset name of models/wan/presets.h plus per-key overrides, resolved by
  // models::wan_config(config) (core knows neither the presets nor the model struct).
  std::string model_preset = "wan-1.3b";
  std::optional<int> model_dim, model_ffn_dim, model_freq_dim, model_num_heads,
      model_num_layers, model_in_dim, model_out_dim, model_text_dim, model_text_len;
  std::string wan_model_dir = "wan_models/Wan2.1-T2V-1.3B";  // CausVid's hard-coded folder
  std::string dit_path;           // "" = wan_model_dir (base DiT weights: teacher, critic init)
  std::string text_encoder_path;  // "" = <wan_model_dir>/models_t5_umt5-xxl-enc-bf16.pth
  std::string tokenizer_path;     // "" = <wan_model_dir>/google/umt5-xxl
  std::string vae_path;           // "" = <wan_model_dir>/Wan2.1_VAE.pth
  std::string prompt_cache;       // "" = encode prompts with the text encoder
  // ---------------------------------------------------------------- diffusion / distillation
  std::string generator_task = "bidirectional_video";  // | "causal_video"
  std::string real_task_type;  // "" = generator_task
  std::string fake_task_type;  // "" = generator_task
  std::vector<int> denoising_step_list = {1000, 757, 522};
  bool warp_denoising_step = false;
  int num_train_timestep = 1000;
  double timestep_shift = 1.0;   // DMD / critic timestep shift (CausVid's dmd.py meaning)
  // The shift of the wrappers' 1000-step flow-matching grid (x0 <-> flow conversion,
  // re-noising, the denoising-list warp, the samplers): CausVid's WanDiffusionWrapper and
  // generate_ode_pairs.py hard-code 8.0.
  double scheduler_shift = 8.0;
  double real_guidance_scale = 3.5;  // YAML alias: guidance_scale (Self-Forcing)
  std::string denoising_loss_type = "flow";  // "flow" | "x0"
  int dfake_gen_update_ratio = 5;
  std::vector<int> image_or_video_shape = {1, 21, 16, 60, 104};  // [B, F, C, H, W] latents
  bool backward_simulation = true;
  double text_dropout = 0.0;  // diffusion stage: P(train on the negative prompt), for CFG
  std::string negative_prompt;
  // ---------------------------------------------------------------- optimizer (AdamW)
  double lr = 2.0e-6;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double weight_decay = 0.01;  // torch.optim.AdamW's default, which CausVid leaves in place
  std::optional<double> lr_critic, beta1_critic, beta2_critic;  // unset = lr, beta1, beta2
  double grad_clip = 10.0;     // CausVid's max_grad_norm
  // Learning-rate schedule (trainer/lr_schedule.h); CausVid and Self-Forcing keep lr constant.
  std::string lr_schedule = "constant";  // "constant" | "cosine" | "wsd"
  int64_t lr_warmup_steps = 0;  // linear warm-up from lr / lr_warmup_steps
  double lr_decay_fraction = 0.0;  // wsd: linear decay over this last fraction of max_iters
  double lr_min_ratio = 0.0;    // cosine / wsd: final lr = lr_min_ratio * lr
  double ema_weight = 0.0;     // 0 = no EMA of the generator
  int64_t ema_start_step = 0;
  // ---------------------------------------------------------------- FSDP
  std::string sharding_strategy = "full";  // "full" | "hybrid_full" | "hybrid_zero2" | "no_shard"
  std::string generator_fsdp_wrap_strategy = "size";  // "size" | "transformer"
  std::string real_score_fsdp_wrap_strategy = "size";
  std::string fake_score_fsdp_wrap_strategy = "size";
  // The frozen umT5 when training encodes prompts live (no prompt_cache): sharded with
  // sharding_strategy, gathered around each encode.
  std::string text_encoder_fsdp_wrap_strategy = "size";
  std::string text_encoder_fsdp_transformer_module;
  std::string generator_fsdp_transformer_module;  // needed by wrap strategy "transformer"
  std::string real_score_fsdp_transformer_module;
  std::string fake_score_fsdp_transformer_module;
  // ---------------------------------------------------------------- data
  std::string data_path;        // ODE pairs LMDB, or a prompt .txt when backward_simulation
  int batch_size = 1;           // per rank
  int64_t max_pair = 100000000;  // ODE LMDB pairs used (train_ode.py's max_pair)
  int num_workers = 2;

  // ---------------------------------------------------------------- Self-Forcing family
  // Self-Forcing's (guandeh17/Self-Forcing) names for the stage: trainer score_distillation
  // with distribution_loss dmd = self_forcing, causvid = dmd; trainer ode / diffusion = ode /
  // diffusion (teacher_forcing when the generator is causal). When `trainer` is given,
  // parse_config derives distillation_loss from them (an explicit one must agree).
  std::string trainer;
  std::string distribution_loss;
  bool same_step_across_blocks = true;  // one exit step for every block of a rollout
  bool last_step_only = false;          // exit at the last denoising step always
  int context_noise = 0;                // timestep of the noise on the cached clean blocks
  bool independent_first_frame = false;
  int num_training_frames = 21;  // rollout length (a multiple of num_frame_per_block)
  bool ts_schedule = true;       // DMD/critic timesteps from the exit step's range
  bool ts_schedule_max = false;
  int min_score_timestep = 0;
  double fake_guidance_scale = 0.0;
  bool i2v = false;              // first latent frame of the data as the rollout's image
  int total_batch_size = 0;      // samples per update over all ranks; 0 = batch_size * world
  std::optional<bool> causal;    // Self-Forcing's flag: must agree with the generator
  // Wrapper arguments of the generator (Self-Forcing's model_kwargs): timestep_shift (its
  // scheduler's shift; the scores keep scheduler_shift), local_attn_size, sink_size (LongLive).
  std::map<std::string, double> model_kwargs;
  std::optional<double> max_grad_norm_generator, max_grad_norm_critic;  // unset = grad_clip
  // A real score of another size (Self-Forcing: real_name Wan2.1-T2V-14B for a 1.3B student):
  // a preset and WanModel size overrides (dim, ffn_dim, num_heads, num_layers, freq_dim);
  // "" / {} = the generator's sizes.
  std::string real_model_preset;
  std::map<std::string, int64_t> real_model_overrides;
  std::string real_dit_path;  // "" = wan_models/<real_name> for a Wan2.1 name, else dit_path
  // Causal Forcing's stage 1 (trainer diffusion with a causal generator): teacher forcing
  // (clean context frames in the sequence; false = diffusion forcing, the block-causal mask
  // over noisy frames only) and the noise augmentation of the clean context (its timestep
  // index drawn in [noise_augmentation_max_timestep, 1000); 0 = none).
  bool teacher_forcing = false;  // the references' getattr default
  int noise_augmentation_max_timestep = 0;
  // LongLive-style long tuning: roll out this many frames (0 = num_training_frames) with a
  // rolling KV cache of long_window frames plus long_sink sink frames, DMD on the last
  // num_training_frames.
  int long_rollout_frames = 0;
  int long_window = 0;
  int long_sink = 0;

  // LoRA training (trainer/train_model.h): adapters on the block linears, base frozen.
  int lora_rank = 0;
  double lora_alpha = 0;
  double lora_dropout = 0;
  std::vector<std::string> lora_target_modules = {"q", "k", "v", "o", "ffn.0", "ffn.2"};
  bool lora_critic = false;
  std::map<std::string, std::string> adapter;  // LongLive: {type: lora, rank, alpha, ...}
  // The LoRA settings in effect: the lora_* keys, with LongLive's adapter block's values
  // where it gives them. rank 0 = no LoRA.
  struct Lora {
    int rank = 0;
    double alpha = 0, dropout = 0;
    std::vector<std::string> targets;
    bool critic = false;
  };
  Lora lora() const;

  // Not a YAML key: where the values came from (file path, "<defaults>"), for messages.
  std::string source = "<defaults>";

  // Throws c10::Error naming the key and the expected value on the first inconsistency.
  // Runs before any device or process-group initialisation. Keys that higher layers
  // interpret (model_preset and the model_* sizes) are checked by the checks they register
  // with register_config_check().
  void validate() const;

  // Resolved views of keys whose "" means "derived".
  const std::string& generator_model() const;  // generator_name or model_name
  const std::string& real_model() const;
  const std::string& fake_model() const;
  const std::string& real_task() const;  // real_task_type or generator_task
  const std::string& fake_task() const;
  bool is_causal() const { return generator_task == "causal_video"; }
  bool is_dmd() const {
    return distillation_loss == "dmd" || distillation_loss == "self_forcing";
  }
  bool is_self_forcing() const { return distillation_loss == "self_forcing"; }
  // The generator's wrapper shift: model_kwargs.timestep_shift, else scheduler_shift.
  double generator_scheduler_shift() const;
  double generator_grad_clip() const { return max_grad_norm_generator.value_or(grad_clip); }
  double critic_grad_clip() const { return max_grad_norm_critic.value_or(grad_clip); }
  // The rolling KV cache of rollouts and generation as (window, sink) in latent frames,
  // window < 0 = none: long_window / long_sink, else LongLive's model_kwargs
  // local_attn_size (frames attended, the sink included) and sink_size.
  std::pair<int64_t, int64_t> attention_window() const;
  // Samples per update on one rank and micro-batches per update (total_batch_size).
  int accumulation_steps(int world_size) const;
  double critic_lr() const { return lr_critic.value_or(lr); }
  double critic_beta1() const { return beta1_critic.value_or(beta1); }
  double critic_beta2() const { return beta2_critic.value_or(beta2); }
  int save_every() const { return save_iters > 0 ? save_iters : log_iters; }
  // CausVid's set_module_grad: whether the wrapper's `model` is trained (default: the map's
  // default, generator and critic true, real score false).
  bool generator_trainable() const { return grad_of(generator_grad, true); }
  bool fake_score_trainable() const { return grad_of(fake_score_grad, true); }
  static bool grad_of(const std::map<std::string, bool>& m, bool def) {
    auto it = m.find("model");
    return it == m.end() ? def : it->second;
  }
  std::string dit_file() const;
  std::string real_dit_file() const;
  // Whether real_name names a Wan2.1 release folder (Self-Forcing: "Wan2.1-T2V-14B").
  bool real_name_is_release() const { return real_name.rfind("Wan2.1-", 0) == 0; }
  std::string text_encoder_file() const;
  std::string tokenizer_dir() const;
  std::string vae_file() const;
  std::string checkpoint_root() const;

 private:
  // validate()'s sections (core/config_validate.cpp).
  void check_run() const;  // run keys
  void check_models() const;  // model names, grads, blocks
  void check_tasks() const;  // tasks against models
  void check_timesteps() const;  // denoising steps, shift, guidance
  void check_latent_shape() const;  // image_or_video_shape (the model-size parts: the registered checks)
  void check_optimizer() const;  // AdamW, EMA, text dropout
  void check_lr_schedule() const;
  void check_fsdp_and_data() const;  // sharding and data keys
  void check_self_forcing() const;  // the Self-Forcing family's keys
  void check_model_kwargs() const;  // model_kwargs, real_model_overrides, attention window
};

// Parses YAML text; `source` names it in messages. Unknown keys, wrong types, missing
// required keys and malformed YAML throw c10::Error naming source (and line). Not validated.
Config parse_config(const std::string& yaml_text, const std::string& source);
// Reads and parses a file (not validated).
Config read_config(const std::string& path);
// Reads `path` merged over `defaults_path` (Self-Forcing's train.py: OmegaConf.merge of
// configs/default_config.yaml and the config; maps merge key by key, the config wins).
// defaults_path "" = none; "auto" = default_config.yaml beside `path` when the config has
// Self-Forcing's `trainer` key and that file exists (logged).
Config read_config(const std::string& path, const std::string& defaults_path);
// Applies "key=value" overrides in order; each value is parsed as YAML
// ("lr=1e-5", "denoising_step_list=[1000,757,522]", "generator_ckpt=" clears a string,
// "model_dim=null" unsets an optional). Unknown keys error like in files.
void apply_overrides(Config& config, const std::vector<std::string>& overrides);
// read_config + apply_overrides + validate.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {},
                   const std::string& defaults_path = "auto");

// The config as YAML (UTF-8, sections commented); parse_config(config_to_yaml(c)) == c.
std::string config_to_yaml(const Config& config);
// Writes config_to_yaml atomically.
void save_config(const Config& config, const std::string& path);

// Compares every YAML key (not `source`).
bool operator==(const Config& a, const Config& b);
inline bool operator!=(const Config& a, const Config& b) { return !(a == b); }

// Every key, for `causvid config --list-keys`.
struct ConfigKeyInfo {
  std::string name, section, type, default_value, doc;
  bool required_ode = false, required_dmd = false;
};
std::vector<ConfigKeyInfo> config_keys();

// A check of keys a higher layer interprets (models registers the model-size check), run by
// Config::validate() after its own checks, in registration order. Registered at startup by
// an explicit call (models::register_builtins()); registering a name again replaces it.
using ConfigCheck = std::function<void(const Config&)>;
void register_config_check(const std::string& name, ConfigCheck check);

// Levenshtein (with adjacent transpositions) distance, for "did you mean" suggestions.
int edit_distance(const std::string& a, const std::string& b);

}  // namespace causvid::core
