// inference/generate_setup.cpp: see generate_setup.h.
#include "inference/generate_setup.h"

#include <sstream>

#include "core/dist.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/prompt_cache.h"
#include "inference/step_list.h"
#include "models/wan/presets.h"

namespace causvid::inference {

GenerateFlags::GenerateFlags(core::ArgParser& p) {
  config_ = &p.flag("--config", "", "CausVid YAML config (model_preset gives the DiT size)");
  set_ = &p.multi("--set", "config override key=value (repeatable)");
  checkpoint_ = &p.flag("--checkpoint", "",
                        "generator weights: safetensors/.pth (WanModel keys), CausVid model.pt, "
                        "or a checkpoint_model_NNNNNN/ dir; '' = generator_ckpt (teacher: dit_path)");
  which_ = &p.flag("--which", "generator", "model group inside model.pt: generator | generator_ema");
  random_init_ = &p.flag("--random-init", "",
                         "SEED: random weights instead of a checkpoint (demos, benchmarks)");
  mode_ = &p.flag("--mode", "",
                  "causal | bidirectional | teacher; '' = causal if generator_task is "
                  "causal_video, else bidirectional");
  num_frames_ = &p.flag("--num-frames", "",
                        "latent frames per rollout (81 video frames = 21); '' = "
                        "image_or_video_shape[1]; causal: a multiple of num_frame_per_block");
  height_ = &p.flag("--height", "", "latent height; '' = image_or_video_shape[3] (60 = 480 px)");
  width_ = &p.flag("--width", "", "latent width; '' = image_or_video_shape[4] (104 = 832 px)");
  steps_ = &p.flag("--denoising-steps", "",
                   "comma list of timesteps, e.g. 1000,757,522; '' = denoising_step_list "
                   "(trailing 0 dropped, warped when warp_denoising_step)");
  window_ = &p.flag("--window-frames", "-1",
                    "rolling KV cache: attend to the last W latent frames (-1 = full cache)");
  sink_ = &p.flag("--sink-frames", "0", "rolling KV cache: first K latent frames kept forever");
  rollout_ = &p.flag("--num-rollout", "1", "long video: rollouts (CausVid's long-video script)");
  overlap_ = &p.flag("--num-overlap-frames", "3",
                     "long video: latent frames re-used as start latents of the next rollout");
  teacher_steps_ = &p.flag("--teacher-steps", "50", "teacher mode: Euler steps");
  guidance_ = &p.flag("--guidance-scale", "", "teacher mode: CFG scale; '' = real_guidance_scale");
  v2v_t_ = &p.flag("--v2v-timestep", "757",
                   "video-to-video: noise the input latents to this timestep (0..1000]");
  fps_ = &p.flag("--fps", "16", "output frame rate");
  no_stream_ = &p.toggle("--no-stream",
                         "write the mp4 to a temp file and rename at the end (default: streaming "
                         "fragmented mp4, valid after every block)");
  preview_scale_ = &p.flag("--preview-scale", "8", "no-VAE latent preview: pixels per latent");
  resize_image_ = &p.toggle("--resize-image", "i2v: stretch an image of another size (default: error)");
  no_vae_ = &p.toggle("--no-vae", "do not load the VAE: write latent previews (also vae_path: none)");
  text_encoder_ = &p.flag("--text-encoder", "",
                          "'' = prompt_cache or text_encoder_path from the config; 'hash' = "
                          "deterministic random embeddings (tests, toy world)");
  seed_ = &p.flag("--seed", "", "base seed (sample i uses seed + i); '' = the config's seed");
  quiet_ = &p.toggle("--quiet", "no progress bar");
  codec_ = &p.flag("--codec", "libx264", "video encoder (falls back to mpeg4 when missing)");
  device_ = &p.flag("--device", "", "auto, cpu, cuda (= cuda:LOCAL_RANK) or cuda:N; '' = the "
                    "config's device");
  dtype_ = &p.flag("--dtype", "", "weights and compute: fp32 or bf16; '' = bf16 on CUDA, fp32 "
                   "on CPU");
}

std::string GenerateFlags::device_spec() const {
  if (!device_->empty()) return *device_;
  TORCH_CHECK(!config_->empty(), "--config: a CausVid YAML config is required");
  return core::load_config(*config_, *set_).device;
}

namespace {

std::vector<double> parse_list(const std::string& flag, const std::string& v) {
  std::vector<double> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(core::ArgParser::to_double(flag, item));
  TORCH_CHECK(!out.empty(), flag, ": got '", v, "', want a comma list of timesteps");
  return out;
}

}  // namespace

GenerateSetup GenerateFlags::build(std::optional<torch::Device> device) const {
  TORCH_CHECK(!config_->empty(), "--config: a CausVid YAML config is required");
  GenerateSetup s;
  s.config = core::load_config(*config_, *set_);
  const auto& c = s.config;
  GenerateOptions o;
  o.mode = mode_->empty() ? (c.is_causal() ? "causal" : "bidirectional") : *mode_;
  const auto& shape = c.image_or_video_shape;
  o.num_frames = num_frames_->empty() ? shape[1] : core::ArgParser::to_int("--num-frames", *num_frames_);
  o.latent_height = height_->empty() ? shape[3] : core::ArgParser::to_int("--height", *height_);
  o.latent_width = width_->empty() ? shape[4] : core::ArgParser::to_int("--width", *width_);
  o.denoising_steps =
      steps_->empty() ? sampling_step_list(c) : parse_list("--denoising-steps", *steps_);
  // The wrapper's grid (x0 <-> flow conversion, re-noising, v2v noising) as in training.
  o.timestep_shift = c.timestep_shift;
  o.num_frame_per_block = c.num_frame_per_block;
  o.window_frames = core::ArgParser::to_int("--window-frames", *window_);
  o.sink_frames = core::ArgParser::to_int("--sink-frames", *sink_);
  o.num_rollout = core::ArgParser::to_int("--num-rollout", *rollout_);
  o.num_overlap_frames = core::ArgParser::to_int("--num-overlap-frames", *overlap_);
  o.teacher_steps = core::ArgParser::to_int("--teacher-steps", *teacher_steps_);
  o.guidance_scale = guidance_->empty() ? c.real_guidance_scale
                                        : core::ArgParser::to_double("--guidance-scale", *guidance_);
  o.negative_prompt = c.negative_prompt;
  o.v2v_timestep = core::ArgParser::to_double("--v2v-timestep", *v2v_t_);
  o.fps = core::ArgParser::to_double("--fps", *fps_);
  o.stream = *no_stream_ != "1";
  o.preview_scale = core::ArgParser::to_int("--preview-scale", *preview_scale_);
  o.resize_image = *resize_image_ == "1";
  o.quiet = *quiet_ == "1";
  o.codec = *codec_;
  s.seed = seed_->empty() ? c.seed : core::ArgParser::to_int("--seed", *seed_);
  if (device) {
    o.device = *device;
  } else {
    const auto env = core::parse_dist_env(core::process_env());
    o.device = core::resolve_device(device_->empty() ? c.device : *device_, env.local_rank,
                                    env.local_world_size);
  }
  o.dtype = dtype_->empty() ? (o.device.is_cuda() ? torch::kBFloat16 : torch::kFloat32)
                            : core::parse_dtype(*dtype_, "--dtype");
  TORCH_CHECK(o.dtype != torch::kFloat16, "--dtype: fp16 is not supported (Wan2.1 overflows in "
              "fp16); want fp32 or bf16");

  // Model: architecture from the config, weights from the checkpoint.
  auto wc = models::wan_config(c);
  models::WanModel model(wc);
  if (!random_init_->empty()) {
    const int64_t rs = core::ArgParser::to_int("--random-init", *random_init_);
    model->init_weights(rs);
    torch::NoGradGuard ng;
    torch::manual_seed(rs);
    model->head->head->weight.normal_(0, 0.02);  // init_weights zeroes the head
    LOG_WARN("--random-init: random weights, the output is noise-like");
  } else {
    std::string ck = *checkpoint_;
    if (ck.empty()) ck = o.mode == "teacher" ? c.dit_file() : c.generator_ckpt;
    load_generator_weights(model, ck, o.mode == "teacher" && checkpoint_->empty() ? "generator"
                                                                                  : *which_);
  }

  // Text conditioning: the config's, unless --text-encoder names a registered encoder
  // ("hash"), which then replaces the prompt cache too.
  data::TextConditionerOptions to;
  to.cache_dir = c.prompt_cache;
  to.encoder_path = c.text_encoder_file();
  to.tokenizer_path = c.tokenizer_dir();
  to.text_len = wc.text_len;
  to.text_dim = wc.text_dim;
  to.device = o.device;
  if (!text_encoder_->empty()) {
    TORCH_CHECK(data::find_text_encoder(*text_encoder_), "--text-encoder: got '",
                *text_encoder_, "', want one of the registered encoders (",
                [] {
                  std::string s;
                  for (const auto& n : data::text_encoder_names()) s += (s.empty() ? "" : ", ") + n;
                  return s;
                }(), ") or '' for the config's");
    to.encoder_path = *text_encoder_;
    to.cache_dir.clear();
  }
  std::unique_ptr<models::TextConditioner> text = data::make_text_conditioner(to);
  std::unique_ptr<models::WanVAEWrapper> vae;
  if (*no_vae_ != "1" && c.vae_path != "none") vae = load_vae(c.vae_file());
  s.generator = std::make_unique<VideoGenerator>(model, std::move(text), std::move(vae), o);
  return s;
}

}  // namespace causvid::inference
