// core/config_validate.cpp: Config::validate() (see config.h), in one function per section
// of the key table, and the registry of checks that higher layers add
// (register_config_check).
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <tuple>
#include <utility>

#include "core/config.h"

namespace causvid::core {
namespace {

std::string join(const std::vector<std::string>& v, const char* sep = " | ") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

std::string list_str(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

bool one_of(const std::string& v, const std::vector<std::string>& allowed) {
  return std::find(allowed.begin(), allowed.end(), v) != allowed.end();
}

void check_one_of(const std::string& src, const char* key, const std::string& v,
                  const std::vector<std::string>& allowed) {
  TORCH_CHECK(one_of(v, allowed), src, ": key '", key, "': got '", v, "', want ", join(allowed));
}

const std::vector<std::string> kModelNames = {"wan", "causal_wan"};
const std::vector<std::string> kTaskNames = {"bidirectional_video", "causal_video"};

// Registered checks, in registration order (a vector: few entries, order kept).
struct CheckRegistry {
  std::mutex mu;
  std::vector<std::pair<std::string, ConfigCheck>> checks;
};

CheckRegistry& check_registry() {
  static CheckRegistry r;
  return r;
}

}  // namespace

void register_config_check(const std::string& name, ConfigCheck check) {
  auto& r = check_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (auto& [n, c] : r.checks)
    if (n == name) {
      c = std::move(check);
      return;
    }
  r.checks.emplace_back(name, std::move(check));
}

void Config::validate() const {
  check_run();
  check_models();
  check_tasks();
  check_timesteps();
  check_latent_shape();
  check_optimizer();
  check_fsdp_and_data();
  check_self_forcing();
  {
    const auto l = lora();  // also checks LongLive's adapter block
    TORCH_CHECK(l.rank >= 0, source, ": key 'lora_rank': got ", l.rank, ", want >= 0");
    TORCH_CHECK(l.alpha >= 0, source, ": key 'lora_alpha': got ", l.alpha, ", want >= 0");
    TORCH_CHECK(l.dropout >= 0 && l.dropout < 1, source, ": key 'lora_dropout': got ", l.dropout,
                ", want [0, 1)");
    TORCH_CHECK(adapter.empty() || l.rank > 0, source,
                ": key 'adapter': no rank (want adapter: {type: lora, rank: R, ...})");
    TORCH_CHECK(l.rank > 0 || !l.critic, source, ": key 'lora_critic': true needs lora_rank > 0");
    TORCH_CHECK(l.rank == 0 || !l.targets.empty(), source,
                ": key 'lora_target_modules': empty, want the linears to adapt");
  }
  std::vector<ConfigCheck> checks;
  {
    auto& r = check_registry();
    std::lock_guard<std::mutex> lock(r.mu);
    for (const auto& nc : r.checks) checks.push_back(nc.second);
  }
  for (const auto& check : checks) check(*this);
}

void Config::check_run() const {
  const std::string& src = source;
  // Run.
  check_one_of(src, "distillation_loss", distillation_loss,
               {"ode", "dmd", "diffusion", "self_forcing", "teacher_forcing"});
  TORCH_CHECK(device == "auto" || device == "cpu" || device == "cuda" ||
                  (device.rfind("cuda:", 0) == 0 && device.size() > 5 &&
                   device.find_first_not_of("0123456789", 5) == std::string::npos),
              src, ": key 'device': got '", device, "', want auto | cpu | cuda | cuda:N");
  TORCH_CHECK(log_iters >= 1, src, ": key 'log_iters': got ", log_iters, ", want >= 1");
  TORCH_CHECK(save_iters >= 0, src, ": key 'save_iters': got ", save_iters,
              ", want >= 0 (0 = log_iters)");
  TORCH_CHECK(max_iters >= 0, src, ": key 'max_iters': got ", max_iters,
              ", want >= 0 (0 = unlimited)");
  TORCH_CHECK(keep_latest >= 0, src, ": key 'keep_latest': got ", keep_latest,
              ", want >= 0 (0 = all)");
  TORCH_CHECK(max_nonfinite_skips >= 1, src, ": key 'max_nonfinite_skips': got ",
              max_nonfinite_skips, ", want >= 1");
  TORCH_CHECK(std::isfinite(preempt_grace_s) && preempt_grace_s >= 0, src,
              ": key 'preempt_grace_s': got ", preempt_grace_s, ", want >= 0");
  TORCH_CHECK(!output_path.empty(), src, ": key 'output_path': got \"\", want a directory");
}

void Config::check_models() const {
  const std::string& src = source;
  // Models.
  check_one_of(src, "model_name", model_name, kModelNames);
  if (!generator_name.empty()) check_one_of(src, "generator_name", generator_name, kModelNames);
  if (!real_name.empty() && !real_name_is_release())
    check_one_of(src, "real_name", real_name,
                 {"wan", "causal_wan", "Wan2.1-T2V-1.3B", "Wan2.1-T2V-14B"});
  TORCH_CHECK(!real_name_is_release() || real_name == "Wan2.1-T2V-1.3B" ||
                  real_name == "Wan2.1-T2V-14B",
              src, ": key 'real_name': got '", real_name,
              "', want wan | causal_wan | Wan2.1-T2V-1.3B | Wan2.1-T2V-14B");
  if (!fake_name.empty()) check_one_of(src, "fake_name", fake_name, kModelNames);
  // CausVid's ode_regression.py builds the generator from model_name only.
  TORCH_CHECK((distillation_loss != "ode" && distillation_loss != "diffusion") ||
                  generator_name.empty() || generator_name == model_name,
              src,
              ": key 'generator_name': got '", generator_name,
              "', want it unset (distillation_loss ode builds the generator from model_name '",
              model_name, "')");
  for (const auto& [key, grads] :
       std::vector<std::pair<const char*, const std::map<std::string, bool>*>>{
           {"generator_grad", &generator_grad},
           {"real_score_grad", &real_score_grad},
           {"fake_score_grad", &fake_score_grad}}) {
    for (const auto& kv : *grads)
      TORCH_CHECK(kv.first == "model", src, ": key '", key, "': got submodule '", kv.first,
                  "', want model (the only submodule of a diffusion wrapper)");
  }
  TORCH_CHECK(!grad_of(real_score_grad, false), src, ": key 'real_score_grad': model: true "
              "asks to train the real score, which no stage does (CausVid keeps the teacher "
              "frozen and has no optimizer for it); want false");
  TORCH_CHECK(is_dmd() || generator_trainable(), src, ": key 'generator_grad': model: false "
              "freezes the generator, leaving distillation_loss ", distillation_loss,
              " nothing to train");
  TORCH_CHECK(!is_dmd() || generator_trainable() || fake_score_trainable(), src,
              ": keys 'generator_grad' and 'fake_score_grad': both model: false leave the DMD "
              "stage nothing to train");
  TORCH_CHECK(num_frame_per_block >= 1, src, ": key 'num_frame_per_block': got ",
              num_frame_per_block, ", want >= 1");
}

void Config::check_tasks() const {
  const std::string& src = source;
  // Tasks.
  check_one_of(src, "generator_task", generator_task, kTaskNames);
  if (!real_task_type.empty()) check_one_of(src, "real_task_type", real_task_type, kTaskNames);
  if (!fake_task_type.empty()) check_one_of(src, "fake_task_type", fake_task_type, kTaskNames);
  auto check_task_model = [&](const char* task_key, const std::string& task,
                              const char* model_key, const std::string& model) {
    bool causal_model = model == "causal_wan";
    bool causal_task = task == "causal_video";
    TORCH_CHECK(causal_model == causal_task, src, ": key '", task_key, "': got '", task,
                "' for model '", model, "' (", model_key, "), want ",
                causal_model ? "causal_video" : "bidirectional_video");
  };
  check_task_model("generator_task", generator_task,
                   generator_name.empty() ? "model_name" : "generator_name", generator_model());
  if (is_dmd()) {
    check_task_model("real_task_type", real_task(),
                     real_name.empty() ? "model_name" : "real_name", real_model());
    check_task_model("fake_task_type", fake_task(),
                     fake_name.empty() ? "model_name" : "fake_name", fake_model());
  }
}

void Config::check_timesteps() const {
  const std::string& src = source;
  // Timesteps.
  TORCH_CHECK(num_train_timestep >= 1, src, ": key 'num_train_timestep': got ",
              num_train_timestep, ", want >= 1");
  const auto& steps = denoising_step_list;
  TORCH_CHECK(!steps.empty(), src, ": key 'denoising_step_list': got [], want at least one step");
  for (size_t i = 0; i < steps.size(); ++i) {
    TORCH_CHECK(steps[i] >= 0 && steps[i] <= num_train_timestep, src,
                ": key 'denoising_step_list': got ", list_str(steps), ", want values in [0, ",
                num_train_timestep, "] (num_train_timestep)");
    TORCH_CHECK(i == 0 || steps[i] < steps[i - 1], src, ": key 'denoising_step_list': got ",
                list_str(steps), ", want strictly descending values");
  }
  TORCH_CHECK(steps[0] > 0, src, ": key 'denoising_step_list': got ", list_str(steps),
              ", want a first step > 0");
  // causal_inference.py asserts denoising_step_list[-1] == 0 and drops it; the ODE
  // trajectories end with the clean latent.
  // Self-Forcing's lists have no trailing 0 (its pipeline drops one if present).
  TORCH_CHECK(!is_causal() || is_self_forcing() || distillation_loss == "teacher_forcing" ||
                  steps.back() == 0,
              src,
              ": key 'denoising_step_list': got ",
              list_str(steps), ", want a last step of 0 for generator_task causal_video");
  // dmd.py: timesteps[1000 - denoising_step_list] over a 1000-entry scheduler table.
  TORCH_CHECK(!warp_denoising_step || num_train_timestep == 1000, src,
              ": key 'num_train_timestep': got ", num_train_timestep,
              ", want 1000 when warp_denoising_step is true");
  TORCH_CHECK(std::isfinite(timestep_shift) && timestep_shift > 0, src,
              ": key 'timestep_shift': got ", timestep_shift, ", want > 0");
  TORCH_CHECK(std::isfinite(scheduler_shift) && scheduler_shift > 0, src,
              ": key 'scheduler_shift': got ", scheduler_shift, ", want > 0");
  TORCH_CHECK(std::isfinite(real_guidance_scale) && real_guidance_scale >= 0, src,
              ": key 'real_guidance_scale': got ", real_guidance_scale, ", want >= 0");
  // loss.py's v/noise losses need alphas_cumprod, which flow matching has not.
  check_one_of(src, "denoising_loss_type", denoising_loss_type, {"flow", "x0"});
  TORCH_CHECK(dfake_gen_update_ratio >= 1, src, ": key 'dfake_gen_update_ratio': got ",
              dfake_gen_update_ratio, ", want >= 1");
}

void Config::check_latent_shape() const {
  const std::string& src = source;
  // Latent shape [B, F, C, H, W].
  const auto& shape = image_or_video_shape;
  TORCH_CHECK(shape.size() == 5 || (!is_dmd() && shape.empty()), src,
              ": key 'image_or_video_shape': got ", list_str(shape),
              ", want 5 values [B, F, C, H, W]");
  if (shape.size() == 5) {
    for (int v : shape)
      TORCH_CHECK(v >= 1, src, ": key 'image_or_video_shape': got ", list_str(shape),
                  ", want positive values");
    TORCH_CHECK(!is_causal() || shape[1] % num_frame_per_block == 0, src,
                ": key 'image_or_video_shape': got F = ", shape[1], " in ", list_str(shape),
                ", want a multiple of num_frame_per_block (", num_frame_per_block,
                ") for generator_task causal_video");
  }
}

void Config::check_optimizer() const {
  const std::string& src = source;
  // Optimizer.
  auto check_lr = [&](const char* key, double v) {
    TORCH_CHECK(std::isfinite(v) && v > 0, src, ": key '", key, "': got ", v, ", want > 0");
  };
  auto check_beta = [&](const char* key, double v) {
    TORCH_CHECK(v >= 0 && v < 1, src, ": key '", key, "': got ", v, ", want in [0, 1)");
  };
  check_lr("lr", lr);
  check_beta("beta1", beta1);
  check_beta("beta2", beta2);
  if (lr_critic) check_lr("lr_critic", *lr_critic);
  if (beta1_critic) check_beta("beta1_critic", *beta1_critic);
  if (beta2_critic) check_beta("beta2_critic", *beta2_critic);
  TORCH_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, src,
              ": key 'weight_decay': got ", weight_decay, ", want >= 0");
  TORCH_CHECK(std::isfinite(grad_clip) && grad_clip > 0, src, ": key 'grad_clip': got ",
              grad_clip, ", want > 0");
  check_lr_schedule();
  check_beta("ema_weight", ema_weight);
  TORCH_CHECK(text_dropout >= 0 && text_dropout < 1, src, ": key 'text_dropout': got ",
              text_dropout, ", want 0 <= p < 1");
  TORCH_CHECK(ema_start_step >= 0, src, ": key 'ema_start_step': got ", ema_start_step,
              ", want >= 0");
}

void Config::check_lr_schedule() const {
  const std::string& src = source;
  check_one_of(src, "lr_schedule", lr_schedule, {"constant", "cosine", "wsd"});
  TORCH_CHECK(lr_warmup_steps >= 0, src, ": key 'lr_warmup_steps': got ", lr_warmup_steps,
              ", want >= 0");
  TORCH_CHECK(lr_min_ratio >= 0 && lr_min_ratio <= 1, src, ": key 'lr_min_ratio': got ",
              lr_min_ratio, ", want in [0, 1]");
  if (lr_schedule == "constant") {
    TORCH_CHECK(lr_decay_fraction == 0, src, ": key 'lr_decay_fraction': got ",
                lr_decay_fraction, ", but lr_schedule is constant (want lr_schedule: wsd)");
    return;
  }
  TORCH_CHECK(max_iters > 0, src, ": key 'max_iters': got ", max_iters, ", want > 0 with lr_schedule ",
              lr_schedule, " (the schedule ends at max_iters)");
  if (lr_schedule == "wsd") {
    TORCH_CHECK(lr_decay_fraction > 0 && lr_decay_fraction <= 1, src,
                ": key 'lr_decay_fraction': got ", lr_decay_fraction,
                ", want in (0, 1] with lr_schedule wsd");
    const double decay = lr_decay_fraction * double(max_iters);
    TORCH_CHECK(double(lr_warmup_steps) + decay <= double(max_iters), src,
                ": key 'lr_warmup_steps': got ", lr_warmup_steps, ", want at most max_iters * (1 - "
                "lr_decay_fraction) = ", max_iters - decay, " with lr_schedule wsd");
  } else {
    TORCH_CHECK(lr_decay_fraction == 0, src, ": key 'lr_decay_fraction': got ",
                lr_decay_fraction, ", but it is only used by lr_schedule wsd");
  }
  TORCH_CHECK(lr_warmup_steps < max_iters, src, ": key 'lr_warmup_steps': got ",
              lr_warmup_steps, ", want < max_iters (", max_iters, ")");
}

void Config::check_fsdp_and_data() const {
  const std::string& src = source;
  // FSDP.
  check_one_of(src, "sharding_strategy", sharding_strategy,
               {"full", "hybrid_full", "hybrid_zero2", "no_shard"});
  for (const auto& [key, wrap, module_key, module] :
       std::vector<std::tuple<std::string, std::string, std::string, std::string>>{
           {"generator_fsdp_wrap_strategy", generator_fsdp_wrap_strategy,
            "generator_fsdp_transformer_module", generator_fsdp_transformer_module},
           {"real_score_fsdp_wrap_strategy", real_score_fsdp_wrap_strategy,
            "real_score_fsdp_transformer_module", real_score_fsdp_transformer_module},
           {"fake_score_fsdp_wrap_strategy", fake_score_fsdp_wrap_strategy,
            "fake_score_fsdp_transformer_module", fake_score_fsdp_transformer_module},
           {"text_encoder_fsdp_wrap_strategy", text_encoder_fsdp_wrap_strategy,
            "text_encoder_fsdp_transformer_module", text_encoder_fsdp_transformer_module}}) {
    check_one_of(src, key.c_str(), wrap, {"size", "transformer"});
    TORCH_CHECK(wrap != "transformer" || !module.empty(), src, ": key '", module_key,
                "': got \"\", want a block class name when ", key, " is transformer");
  }

  // Data.
  TORCH_CHECK(batch_size >= 1, src, ": key 'batch_size': got ", batch_size, ", want >= 1");
  TORCH_CHECK(max_pair >= 1, src, ": key 'max_pair': got ", max_pair, ", want >= 1");
  TORCH_CHECK(num_workers >= 0, src, ": key 'num_workers': got ", num_workers, ", want >= 0");
}

}  // namespace causvid::core

namespace causvid::core {

void Config::check_self_forcing() const {
  const std::string& src = source;
  if (causal.has_value())
    TORCH_CHECK(*causal == (generator_model() == "causal_wan"), src, ": key 'causal': got ",
                *causal ? "true" : "false", ", but the generator is '", generator_model(), "' (",
                generator_name.empty() ? "model_name" : "generator_name", ")");
  TORCH_CHECK(total_batch_size >= 0, src, ": key 'total_batch_size': got ", total_batch_size,
              ", want >= 0 (0 = batch_size x world size)");
  TORCH_CHECK(total_batch_size == 0 || total_batch_size % batch_size == 0, src,
              ": key 'total_batch_size': got ", total_batch_size,
              ", want a multiple of batch_size ", batch_size);
  check_model_kwargs();
  TORCH_CHECK(context_noise >= 0 && context_noise <= num_train_timestep, src,
              ": key 'context_noise': got ", context_noise, ", want a timestep in [0, ",
              num_train_timestep, "]");
  TORCH_CHECK(min_score_timestep >= 0 && min_score_timestep < num_train_timestep, src,
              ": key 'min_score_timestep': got ", min_score_timestep, ", want [0, ",
              num_train_timestep, ")");
  TORCH_CHECK(long_window >= 0 && long_sink >= 0 && long_rollout_frames >= 0, src,
              ": keys 'long_rollout_frames', 'long_window', 'long_sink': want >= 0");
  TORCH_CHECK(noise_augmentation_max_timestep >= 0 && noise_augmentation_max_timestep < num_train_timestep,
              src, ": key 'noise_augmentation_max_timestep': got ", noise_augmentation_max_timestep,
              ", want [0, ", num_train_timestep, ")");
  if (distillation_loss == "teacher_forcing") {
    TORCH_CHECK(generator_model() == "causal_wan" && is_causal(), src,
                ": key 'generator_name': distillation_loss teacher_forcing trains a causal "
                "model (generator_name causal_wan, generator_task causal_video); got '",
                generator_model(), "'");
    TORCH_CHECK(!independent_first_frame, src, ": key 'independent_first_frame': true is not "
                "supported");
  }
  if (!is_self_forcing()) return;
  TORCH_CHECK(generator_model() == "causal_wan" && is_causal(), src,
              ": key 'generator_name': distillation_loss self_forcing rolls the generator out "
              "block by block with its KV cache, so it needs a causal generator (generator_name "
              "causal_wan, generator_task causal_video); got '", generator_model(), "'");
  TORCH_CHECK(!independent_first_frame, src, ": key 'independent_first_frame': true is not "
              "supported (the causal model here has uniform blocks of num_frame_per_block)");
  const int F = image_or_video_shape.size() == 5 ? image_or_video_shape[1] : 0;
  TORCH_CHECK(F % num_frame_per_block == 0, src, ": key 'image_or_video_shape': ", F,
              " frames, want a multiple of num_frame_per_block ", num_frame_per_block);
  TORCH_CHECK(num_training_frames >= F && num_training_frames % num_frame_per_block == 0, src,
              ": key 'num_training_frames': got ", num_training_frames,
              ", want a multiple of num_frame_per_block ", num_frame_per_block,
              " >= image_or_video_shape[1] = ", F);
  TORCH_CHECK(num_training_frames == F || long_rollout_frames == 0, src,
              ": keys 'num_training_frames' (", num_training_frames, ") and 'long_rollout_frames' (",
              long_rollout_frames, ") both ask for rollouts past the training length ", F,
              "; set one (num_training_frames re-encodes the window's first frame through the "
              "VAE as Self-Forcing does, long_rollout_frames keeps the generated latents)");
  const int R = long_rollout_frames > 0 ? long_rollout_frames : num_training_frames;
  TORCH_CHECK(R >= F && R % num_frame_per_block == 0, src, ": key 'long_rollout_frames': got ",
              long_rollout_frames, ", want a multiple of num_frame_per_block >= ", F);
  TORCH_CHECK(!(i2v || num_training_frames > F) || vae_path != "none", src,
              ": key 'vae_path': 'none', but ", i2v ? "i2v" : "num_training_frames > F",
              " re-encodes the rollout window's first frame through the VAE; want the VAE file");
  TORCH_CHECK(long_window == 0 || long_window >= num_frame_per_block, src,
              ": key 'long_window': got ", long_window, ", want 0 or >= num_frame_per_block (",
              num_frame_per_block, ")");
  TORCH_CHECK(backward_simulation, src, ": key 'backward_simulation': false, but the "
              "self_forcing stage always rolls the generator out from noise; want true");
}


// model_kwargs, real_model_overrides and the attention window (check_self_forcing's part).
void Config::check_model_kwargs() const {
  const std::string& src = source;
  for (const auto& kv : model_kwargs)
    TORCH_CHECK(kv.first == "timestep_shift" || kv.first == "local_attn_size" ||
                    kv.first == "sink_size",
                src, ": key 'model_kwargs': got '", kv.first,
                "', want timestep_shift | local_attn_size | sink_size");
  TORCH_CHECK(generator_scheduler_shift() > 0 && std::isfinite(generator_scheduler_shift()), src,
              ": key 'model_kwargs': timestep_shift ", generator_scheduler_shift(), ", want > 0");
  {
    auto la = model_kwargs.find("local_attn_size");
    auto sk = model_kwargs.find("sink_size");
    const double local = la == model_kwargs.end() ? -1 : la->second;
    const double sink = sk == model_kwargs.end() ? 0 : sk->second;
    TORCH_CHECK(local == -1 || (local > sink && sink >= 0 && local == std::floor(local) &&
                                sink == std::floor(sink)),
                src, ": key 'model_kwargs': local_attn_size ", local, " with sink_size ", sink,
                ", want -1 (no window) or whole frames with local_attn_size > sink_size >= 0");
  }
  for (const auto& kv : real_model_overrides)
    TORCH_CHECK(one_of(kv.first, {"dim", "ffn_dim", "freq_dim", "num_heads", "num_layers"}), src,
                ": key 'real_model_overrides': got '", kv.first,
                "', want dim | ffn_dim | freq_dim | num_heads | num_layers (text, in and out "
                "sizes are the generator's)");
  {
    const auto [window, sink] = attention_window();
    TORCH_CHECK(window < 0 || window >= num_frame_per_block, src,
                ": keys 'long_window' / 'model_kwargs.local_attn_size': an attention window of ",
                window, " frames besides the sink, want >= num_frame_per_block (",
                num_frame_per_block, ")");
    TORCH_CHECK(long_sink == 0 || long_window > 0, src, ": key 'long_sink': ", long_sink,
                " sink frames without long_window");
  }
}

}  // namespace causvid::core
