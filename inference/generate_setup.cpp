// inference/generate_setup.cpp: see generate_setup.h.
#include "inference/generate_setup.h"
#include "models/wan/lora.h"

#include <tuple>

#include "core/dist.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/prompt_cache.h"
#include "inference/step_list.h"
#include "models/wan/presets.h"

namespace causvid::inference {

std::string generate_device_spec(const GenerateArgs& a) {
  if (!a.device.empty()) return a.device;
  TORCH_CHECK(!a.config.empty(), "--config: a CausVid YAML config is required");
  return core::load_config(a.config, a.sets).device;
}

// The sampler and output options: the config's, overridden by the flags given.
static GenerateOptions options_from(const GenerateArgs& a, const core::Config& c,
                                    std::optional<torch::Device> device) {
  GenerateOptions o;
  o.mode = a.mode.empty() ? (c.is_causal() ? "causal" : "bidirectional") : a.mode;
  const auto& shape = c.image_or_video_shape;
  o.num_frames = a.num_frames.value_or(shape[1]);
  o.latent_height = a.height.value_or(shape[3]);
  o.latent_width = a.width.value_or(shape[4]);
  o.denoising_steps =
      a.denoising_steps.empty() ? sampling_step_list(c) : a.denoising_steps;
  // The generator wrapper's grid (x0 <-> flow conversion, re-noising, v2v noising) as in
  // training (Self-Forcing: model_kwargs.timestep_shift).
  o.timestep_shift = c.generator_scheduler_shift();
  o.num_frame_per_block = c.num_frame_per_block;
  o.window_frames = a.window_frames;
  o.sink_frames = a.sink_frames;
  // The attention window the model was trained with (long tuning, LongLive's
  // local_attn_size) unless --window-frames says otherwise.
  if (a.window_frames == GenerateArgs::kConfigWindow) {
    o.window_frames = -1;
    if (c.attention_window().first > 0) std::tie(o.window_frames, o.sink_frames) = c.attention_window();
  }
  TORCH_CHECK(a.prompt_switch == "refresh" || a.prompt_switch == "recache",
              "--prompt-switch: got '", a.prompt_switch, "', want refresh | recache");
  o.recache = a.prompt_switch == "recache";
  o.num_rollout = a.num_rollout;
  o.num_overlap_frames = a.num_overlap_frames;
  o.teacher_steps = a.teacher_steps;
  o.guidance_scale = a.guidance_scale.value_or(c.real_guidance_scale);
  o.negative_prompt = c.negative_prompt;
  o.v2v_timestep = a.v2v_timestep;
  o.fps = a.fps;
  o.stream = !a.no_stream;
  o.preview_scale = a.preview_scale;
  o.resize_image = a.resize_image;
  o.quiet = a.quiet;
  o.codec = a.codec;
  if (device) {
    o.device = *device;
  } else {
    const auto env = core::parse_dist_env(core::process_env());
    o.device = core::resolve_device(a.device.empty() ? c.device : a.device, env.local_rank,
                                    env.local_world_size);
  }
  o.dtype = a.dtype.empty() ? (o.device.is_cuda() ? torch::kBFloat16 : torch::kFloat32)
                           : core::parse_dtype(a.dtype, "--dtype");
  TORCH_CHECK(o.dtype != torch::kFloat16, "--dtype: fp16 is not supported (Wan2.1 overflows in "
              "fp16); want fp32 or bf16");

  return o;
}

GenerateSetup build_generate_setup(const GenerateArgs& a, std::optional<torch::Device> device) {
  TORCH_CHECK(!a.config.empty(), "--config: a CausVid YAML config is required");
  GenerateSetup s;
  s.config = core::load_config(a.config, a.sets);
  const auto& c = s.config;
  s.seed = a.seed.value_or(c.seed);
  GenerateOptions o = options_from(a, c, device);

  // Model: architecture from the config, weights from the checkpoint.
  auto wc = models::wan_config(c);
  models::WanModel model(wc);
  if (a.random_init) {
    const int64_t rs = *a.random_init;
    model->init_weights(rs);
    torch::NoGradGuard ng;
    torch::manual_seed(rs);
    model->head->head->weight.normal_(0, 0.02);  // init_weights zeroes the head
    LOG_WARN("--random-init: random weights, the output is noise-like");
  } else {
    std::string ck = a.checkpoint;
    if (ck.empty()) ck = o.mode == "teacher" ? c.dit_file() : c.generator_ckpt;
    load_generator_weights(model, ck, o.mode == "teacher" && a.checkpoint.empty() ? "generator"
                                                                                 : a.which);
  }
  models::merge_loras_into(*model, a.loras);

  // Text conditioning: the config's, unless --text-encoder names a registered encoder
  // ("hash"), which then replaces the prompt cache too.
  data::TextConditionerOptions to;
  to.cache_dir = c.prompt_cache;
  to.encoder_path = c.text_encoder_file();
  to.tokenizer_path = c.tokenizer_dir();
  to.text_len = wc.text_len;
  to.text_dim = wc.text_dim;
  to.device = o.device;
  if (!a.text_encoder.empty()) {
    TORCH_CHECK(data::find_text_encoder(a.text_encoder), "--text-encoder: got '",
                a.text_encoder, "', want one of the registered encoders (",
                [] {
                  std::string s;
                  for (const auto& n : data::text_encoder_names()) s += (s.empty() ? "" : ", ") + n;
                  return s;
                }(), ") or '' for the config's");
    to.encoder_path = a.text_encoder;
    to.cache_dir.clear();
  }
  std::unique_ptr<models::TextConditioner> text = data::make_text_conditioner(to);
  std::unique_ptr<models::WanVAEWrapper> vae;
  if (!a.no_vae && c.vae_path != "none") vae = load_vae(c.vae_file());
  s.generator = std::make_unique<VideoGenerator>(model, std::move(text), std::move(vae), o);
  return s;
}

}  // namespace causvid::inference
