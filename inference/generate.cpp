// inference/generate.cpp: see generate.h.
#include "inference/generate.h"
#include "models/vae/vae_layouts.h"

#include "core/random.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/safetensors.h"
#include "core/tensor_io.h"
#include "data/image_io.h"
#include "data/prompt_cache.h"
#include "data/video_io.h"
#include "inference/causal_pipeline.h"
#include "models/wan/flow_match.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_wrapper.h"

namespace causvid::inference {

namespace fs = std::filesystem;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ------------------------------------------------------------------ helpers

std::string safe_filename(const std::string& prompt, size_t max_len) {
  std::string out;
  bool gap = false;
  for (unsigned char c : prompt) {
    if (c < 128 && (std::isalnum(c) || c == '-' || c == '_')) {
      if (gap && !out.empty()) out += '_';
      gap = false;
      out += static_cast<char>(c);
    } else {
      gap = true;  // spaces, punctuation ('.', '/', ...), non-ASCII: one '_' per run
    }
    if (out.size() >= max_len) break;
  }
  while (!out.empty() && (out[0] == '_' || out[0] == '-')) out.erase(0, 1);
  if (out.size() > max_len) out.resize(max_len);
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.empty() ? "prompt" : out;
}

torch::Tensor latent_preview(const torch::Tensor& lat, int64_t scale) {
  TORCH_CHECK(lat.dim() == 4, "latent_preview: got ", lat.sizes(), ", want [F,C,h,w]");
  TORCH_CHECK(scale >= 1, "--preview-scale: got ", scale, ", want >= 1");
  const int64_t C = lat.size(1);
  auto W = torch::zeros({3, C});
  for (int64_t c = 0; c < 3; ++c) {
    int64_t n = 0;
    for (int64_t i = c; i < C; i += 3) ++n;
    if (n == 0) {
      W[c].fill_(1.0 / C);
    } else {
      for (int64_t i = c; i < C; i += 3) W[c][i] = 1.0 / n;
    }
  }
  auto rgb = torch::tanh(torch::einsum("kc,fchw->fkhw", {W, lat.to(torch::kFloat32).cpu()}));
  if (scale > 1) rgb = rgb.repeat_interleave(scale, 2).repeat_interleave(scale, 3);
  return rgb.contiguous();
}

torch::Tensor HashTextConditioner::encode(const std::vector<std::string>& prompts) {
  auto out = torch::zeros({static_cast<int64_t>(prompts.size()), text_len_, dim_});
  for (size_t n = 0; n < prompts.size(); ++n) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : prompts[n]) h = (h ^ c) * 1099511628211ull;
    auto gen = at::detail::createCPUGenerator(h & 0x7fffffffffffffffull);
    std::istringstream words(prompts[n]);
    std::string w;
    int64_t nw = 0;
    while (words >> w) ++nw;
    const int64_t len = std::min(text_len_, 1 + nw);
    out[n].slice(0, 0, len).copy_(at::randn({len, dim_}, gen, torch::TensorOptions()));
  }
  return out;
}

void load_generator_weights(models::WanModel& model, const std::string& path,
                            const std::string& which) {
  TORCH_CHECK(!path.empty(), "--checkpoint: no checkpoint given (set generator_ckpt or pass "
              "--checkpoint PATH)");
  TORCH_CHECK(fs::exists(path), "--checkpoint: ", path, " does not exist");
  // Directories (checkpoints, Wan2.1 and diffusers folders) resolve in the loader.
  models::load_wan_weights(model, path, which);
}

std::unique_ptr<models::WanVAEWrapper> load_vae(const std::string& path) {
  return models::load_wan_vae_any(path);
}

// ------------------------------------------------------------------ generator

struct VideoGenerator::Sinks {
  std::unique_ptr<data::VideoWriter> mp4;
  std::unique_ptr<data::RawFrameWriter> raw;
  int64_t frames = 0;
  // Pixel frames held back (long-video rollout: the tail the next rollout regenerates).
  int64_t holdback = 0;
  torch::Tensor held;  // [n,3,H,W] float
  std::function<void()> on_first;

  void write(const torch::Tensor& f) {
    if (f.size(0) == 0) return;
    if (mp4) mp4->add_frames(f);
    if (raw) raw->add_frames(f);
    if (frames == 0 && on_first) on_first();
    frames += f.size(0);
  }
  void add(const torch::Tensor& f) {
    auto all = held.defined() && held.size(0) > 0 ? torch::cat({held, f}) : f;
    const int64_t n = std::max<int64_t>(0, all.size(0) - holdback);
    write(all.slice(0, 0, n));
    held = all.slice(0, n).clone();
  }
  torch::Tensor take_held() {
    auto h = held;
    held = torch::Tensor();
    return h;
  }
};

VideoGenerator::VideoGenerator(models::WanModel model,
                               std::unique_ptr<models::TextConditioner> text,
                               std::unique_ptr<models::WanVAEWrapper> vae, GenerateOptions opts)
    : model_(std::move(model)), text_(std::move(text)), vae_(std::move(vae)),
      opts_(std::move(opts)) {
  TORCH_CHECK(text_, "VideoGenerator: no text conditioner");
  model_->to(opts_.device, opts_.dtype);
  model_->eval();
  if (vae_) vae_->to(opts_.device, opts_.dtype);
}

int64_t VideoGenerator::temporal_stride() const {
  return vae_ ? vae_->model()->config().temporal_stride() : 1;
}

int64_t VideoGenerator::pixel_frames_for(int64_t n) const {
  return n <= 0 ? 0 : 1 + temporal_stride() * (n - 1);
}

void VideoGenerator::check(const SampleSpec& s) const {
  const auto& o = opts_;
  const auto& mc = model_->config();
  TORCH_CHECK(o.mode == "causal" || o.mode == "bidirectional" || o.mode == "teacher",
              "--mode: got '", o.mode, "', want causal | bidirectional | teacher");
  TORCH_CHECK(o.num_frames > 0, "--num-frames: got ", o.num_frames, ", want > 0");
  TORCH_CHECK(o.num_frame_per_block > 0, "num_frame_per_block: got ", o.num_frame_per_block);
  TORCH_CHECK(o.latent_height > 0 && o.latent_width > 0 &&
                  o.latent_height % mc.patch_size[1] == 0 && o.latent_width % mc.patch_size[2] == 0,
              "--height/--width: latent size ", o.latent_height, "x", o.latent_width,
              " must be positive multiples of the patch size ", mc.patch_size[1], "x",
              mc.patch_size[2]);
  TORCH_CHECK(!o.denoising_steps.empty(), "denoising steps: want at least one");
  TORCH_CHECK(o.fps > 0, "--fps: got ", o.fps);
  if (vae_)
    TORCH_CHECK(vae_->model()->config().z_dim == mc.in_dim, "vae_path: the VAE has ",
                vae_->model()->config().z_dim, " latent channels, the model wants ", mc.in_dim);
  if (o.mode == "causal") {
    TORCH_CHECK(o.num_frames % o.num_frame_per_block == 0, "--num-frames: ", o.num_frames,
                " latent frames are not divisible by num_frame_per_block ",
                o.num_frame_per_block);
    if (o.window_frames >= 0) {
      TORCH_CHECK(o.window_frames >= o.num_frame_per_block, "--window-frames: got ",
                  o.window_frames, ", want >= num_frame_per_block ", o.num_frame_per_block);
      TORCH_CHECK(o.sink_frames >= 0, "--sink-frames: got ", o.sink_frames, ", want >= 0");
    }
    TORCH_CHECK(o.num_rollout >= 1, "--num-rollout: got ", o.num_rollout, ", want >= 1");
    if (o.num_rollout > 1) {
      TORCH_CHECK(o.num_overlap_frames >= 1 && o.num_overlap_frames % o.num_frame_per_block == 0 &&
                      o.num_overlap_frames < o.num_frames,
                  "--num-overlap-frames: got ", o.num_overlap_frames, ", want a multiple of "
                  "num_frame_per_block ", o.num_frame_per_block, " below --num-frames ",
                  o.num_frames);
      TORCH_CHECK(s.video.empty(), "--video (v2v) cannot be combined with --num-rollout > 1");
    }
  } else {
    TORCH_CHECK(s.schedule.empty(), "--prompt-schedule needs --mode causal");
    TORCH_CHECK(s.image.empty() && s.video.empty(), "--image/--video need --mode causal");
    TORCH_CHECK(o.num_rollout == 1 && o.window_frames < 0,
                "--num-rollout/--window-frames need --mode causal");
  }
  TORCH_CHECK(!(s.image.size() && s.video.size()), "--image and --video are exclusive");
  if (!s.image.empty()) {
    TORCH_CHECK(vae_, "--image: image-to-video needs a VAE (vae_path is 'none')");
    TORCH_CHECK(!fs::is_directory(s.image), "--image: ", s.image, " is a directory, want an image file");
    TORCH_CHECK(fs::is_regular_file(s.image), "--image: ", s.image, " does not exist");
  }
  if (!s.video.empty()) {
    TORCH_CHECK(vae_, "--video: video-to-video needs a VAE (vae_path is 'none')");
    TORCH_CHECK(!fs::is_directory(s.video), "--video: ", s.video, " is a directory, want a video file");
    TORCH_CHECK(fs::is_regular_file(s.video), "--video: ", s.video, " does not exist");
    TORCH_CHECK(o.v2v_timestep > 0 && o.v2v_timestep <= 1000, "--v2v-timestep: got ",
                o.v2v_timestep, ", want (0, 1000]");
  }
  if (s.schedule.empty()) TORCH_CHECK(!s.prompt.empty(), "no prompt given");
  if (!s.schedule.empty())
    resolve_schedule(s.schedule, o.fps, temporal_stride(), o.num_frame_per_block,
                     s.schedule_source, o.num_rollout * (o.num_frames / o.num_frame_per_block));
  for (const auto& p : {s.out_path, s.latents_out}) {
    if (p.empty() || p == "-") continue;
    auto dir = fs::path(p).parent_path();
    if (dir.empty()) dir = ".";
    TORCH_CHECK(fs::is_directory(dir), "output ", p, ": directory ", dir.string(),
                " does not exist");
    TORCH_CHECK(::access(dir.c_str(), W_OK) == 0, "output ", p, ": directory ", dir.string(),
                " is not writable");
    TORCH_CHECK(!fs::is_directory(p), "output ", p, " is a directory, want a file path");
  }
}

torch::Tensor VideoGenerator::encode_prompt(const std::string& prompt) {
  auto e = text_->encode({prompt}).to(opts_.device, torch::kFloat32);
  const auto& mc = model_->config();
  TORCH_CHECK(e.size(2) == mc.text_dim, "text encoder: embedding dim ", e.size(2),
              ", the model wants text_dim ", mc.text_dim);
  return e;
}

SampleResult VideoGenerator::generate(const SampleSpec& spec) {
  const double t0 = now_s();
  check(spec);
  c10::InferenceMode im;
  Sinks sinks;
  bool created_streaming = false;
  try {
    if (!spec.out_path.empty()) {
      data::WriterOptions wo;
      wo.fps = opts_.fps;
      wo.streaming = opts_.stream;
      wo.codec = opts_.codec;
      wo.odd_size = data::OddSize::kPad;
      sinks.mp4 = std::make_unique<data::VideoWriter>(spec.out_path, wo);
      created_streaming = opts_.stream;
    }
    if (!spec.raw_path.empty()) sinks.raw = std::make_unique<data::RawFrameWriter>(spec.raw_path);
    SampleResult r = opts_.mode == "causal" ? run_causal(spec, sinks, t0)
                                            : run_whole(spec, sinks, t0);
    if (sinks.mp4) sinks.mp4->close();
    if (sinks.raw) sinks.raw->close();
    if (!spec.latents_out.empty()) core::save_safetensors(spec.latents_out, {{"latents", r.latents}});
    r.pixel_frames = sinks.frames;
    r.total_s = now_s() - t0;
    return r;
  } catch (...) {
    sinks.mp4.reset();
    sinks.raw.reset();
    if (created_streaming) {
      std::error_code ec;
      fs::remove(spec.out_path, ec);  // a streamed file is valid but incomplete: remove it
    }
    throw;
  }
}

namespace {

// KV re-cache at a prompt switch (LongLive): the cache is rebuilt from the frames generated
// so far under the pipeline's (new) context. Only frames the next block attends to are
// re-run: all of them with a plain cache, the sink and the last window with a rolling one.
// `blocks`: the latents so far (an i2v image frame first when offset is 1); `end`: the
// next block's first frame.
void recache(CausalPipeline& pipe, const std::vector<torch::Tensor>& blocks, int64_t offset,
             int64_t end, int64_t frame_seqlen, int64_t total_frames) {
  const auto& so = pipe.options();
  pipe.reset(1, frame_seqlen, total_frames);
  int64_t f0 = 0;
  for (const auto& blk : blocks) {
    const int64_t f1 = f0 + blk.size(1);
    const bool needed = so.window_frames < 0 || f0 < so.sink_frames ||
                        f1 > end - so.window_frames;
    if (needed) pipe.write_context_frames(blk, f0);
    f0 = f1;
  }
  TORCH_CHECK(f0 == end, "recache: ", f0, " frames cached, want ", end, " (offset ", offset, ")");
}

// Decodes latent blocks to pixel frames: the streaming VAE decoder, or the preview map.
struct BlockDecoder {
  models::WanVAEWrapper* vae;
  int64_t scale;
  std::unique_ptr<models::WanVAEStreamDecoder> dec;
  void reset() {
    if (vae) dec = std::make_unique<models::WanVAEStreamDecoder>(vae->stream_decoder());
  }
  torch::Tensor operator()(const torch::Tensor& lat_BFCHW) {
    if (vae) return dec->push(lat_BFCHW)[0].cpu();
    return latent_preview(lat_BFCHW[0], scale);
  }
};

}  // namespace

// Conditioning: one embedding per schedule segment (computed once each).
struct VideoGenerator::CausalInputs {
  std::vector<PromptSegment> segs;
  std::map<std::string, torch::Tensor> emb;
  torch::Tensor image_latent;      // [1,1,z,h,w] or undefined
  torch::Tensor v2v_noised;        // [1,F,z,h,w] or undefined
  std::vector<double> steps;       // the denoising steps (v2v: those below v2v_timestep)
  at::Generator gen;
  size_t segment_at(int64_t block) const {
    size_t k = 0;
    while (k + 1 < segs.size() && segs[k + 1].start_block <= block) ++k;
    return k;
  }
  const torch::Tensor& context(size_t seg) { return emb[segs[seg].prompt]; }
};

namespace {

// Multi-rollout: the next rollout starts from the last K latent frames of `lat`
// [1,offset+F,C,h,w], the first of them re-encoded from its pixels `tail` (CausVid), or
// taken as is in preview mode (no VAE round trip).
torch::Tensor overlap_start(const torch::Tensor& lat, const torch::Tensor& tail, int64_t K,
                            models::WanVAEWrapper* vae) {
  torch::Tensor first;
  if (vae) {
    first = vae->encode_to_latent(tail.slice(0, 0, 1).permute({1, 0, 2, 3}).unsqueeze(0));
  } else {
    first = lat.slice(1, lat.size(1) - K, lat.size(1) - K + 1);
  }
  return torch::cat({first, lat.slice(1, lat.size(1) - (K - 1))}, 1);
}

}  // namespace

SampleResult VideoGenerator::run_causal(const SampleSpec& spec, Sinks& sinks, double t0) {
  const auto& o = opts_;
  const int64_t F = o.num_frames, nfpb = o.num_frame_per_block;
  const int64_t h = o.latent_height, w = o.latent_width;
  CausalInputs in;
  in.gen = at::detail::createCPUGenerator(static_cast<uint64_t>(spec.seed));
  in.segs = spec.schedule.empty()
                ? std::vector<PromptSegment>{{0, spec.prompt}}
                : resolve_schedule(spec.schedule, o.fps, temporal_stride(), nfpb,
                                   spec.schedule_source);
  for (const auto& s : in.segs)
    if (!in.emb.count(s.prompt)) in.emb[s.prompt] = encode_prompt(s.prompt);

  // Image-to-video: the image's 1-frame latent is the clean first frame.
  const int64_t H = h * (vae_ ? vae_->model()->config().spatial_stride() : 1);
  const int64_t W = w * (vae_ ? vae_->model()->config().spatial_stride() : 1);
  if (!spec.image.empty()) {
    auto img = data::read_image_float(spec.image);  // [3,H,W]
    if (img.size(1) != H || img.size(2) != W) {
      TORCH_CHECK(o.resize_image, "--image: ", spec.image, " is ", img.size(2), "x",
                  img.size(1), ", want ", W, "x", H,
                  " (the output size); pass --resize-image to stretch it");
      img = data::uint8_to_float(data::resize_frames(data::read_image(spec.image),
                                                     static_cast<int>(H), static_cast<int>(W)));
    }
    in.image_latent = vae_->encode_to_latent(img.unsqueeze(0).unsqueeze(2));  // [1,1,z,h,w]
  }
  // Video-to-video: the input's latents noised to v2v_timestep (SDEdit), then denoised
  // block by block with the steps below that timestep.
  in.steps = o.denoising_steps;
  if (!spec.video.empty()) {
    const int64_t need = pixel_frames_for(F);
    data::DecodeOptions d;
    d.width = static_cast<int>(W);
    d.height = static_cast<int>(H);
    d.target_fps = o.fps;
    d.num_frames = need;
    d.allow_fewer = true;
    auto frames = data::read_video_float(spec.video, d);  // [Fp,3,H,W]
    TORCH_CHECK(frames.size(0) >= need, "--video: ", spec.video, " has ", frames.size(0),
                " frames at ", o.fps, " fps, want at least ", need, " for ", F,
                " latent frames (--num-frames)");
    auto lat = vae_->encode_to_latent(frames.permute({1, 0, 2, 3}).unsqueeze(0));  // [1,F,z,h,w]
    auto noise = core::randn_like(lat, in.gen);
    auto t = torch::full({F}, o.v2v_timestep);
    models::FlowMatchScheduler grid = models::FlowMatchScheduler::wan_training(o.timestep_shift);
    in.v2v_noised = grid.add_noise(lat.flatten(0, 1), noise.flatten(0, 1), t).view(lat.sizes());
    in.steps = {o.v2v_timestep};
    for (double s : o.denoising_steps)
      if (s < o.v2v_timestep) in.steps.push_back(s);
  }
  return run_rollouts(in, sinks, t0);
}

SampleResult VideoGenerator::run_rollouts(CausalInputs& in, Sinks& sinks, double t0) {
  const auto& o = opts_;
  const auto& mc = model_->config();
  const int64_t F = o.num_frames, nfpb = o.num_frame_per_block, C = mc.in_dim;
  const int64_t h = o.latent_height, w = o.latent_width;
  const int64_t frame_seqlen = (h / mc.patch_size[1]) * (w / mc.patch_size[2]);
  const int64_t R = o.num_rollout, K = o.num_overlap_frames;
  const int64_t blocks_per_rollout = F / nfpb;
  SampleResult res;
  models::WanDiffusionWrapper wrapper(model_, /*causal=*/true, nfpb, o.timestep_shift);
  CausalSamplerOptions so;
  so.denoising_step_list = in.steps;
  so.num_frame_per_block = nfpb;
  so.window_frames = o.window_frames;
  so.sink_frames = o.sink_frames;
  CausalPipeline pipe(wrapper, so);
  BlockDecoder decode{vae_.get(), o.preview_scale, nullptr};

  sinks.holdback = R > 1 ? pixel_frames_for(K) : 0;
  sinks.on_first = [&] { res.first_frame_s = now_s() - t0; };
  std::vector<torch::Tensor> kept_latents;
  core::Progress bar("generate", R * blocks_per_rollout, 10.0, o.quiet);
  torch::Tensor start_latents;
  int64_t gblock = 0;
  for (int64_t r = 0; r < R; ++r) {
    const int64_t offset = (r == 0 && in.image_latent.defined()) ? 1 : 0;
    pipe.reset(1, frame_seqlen, offset + F);
    size_t seg = in.segment_at(gblock);
    pipe.set_context(in.context(seg));
    decode.reset();
    auto noise = core::randn({1, F, C, h, w}, in.gen, torch::TensorOptions().device(o.device));
    std::vector<torch::Tensor> lat_blocks;
    if (offset) {
      const double tb = now_s();
      pipe.write_context_frames(in.image_latent, 0);
      lat_blocks.push_back(in.image_latent);
      sinks.add(decode(in.image_latent));
      res.block_s.push_back(now_s() - tb);
    }
    const int64_t num_start = start_latents.defined() ? start_latents.size(1) / nfpb : 0;
    for (int64_t b = 0; b < blocks_per_rollout; ++b, ++gblock) {
      const double tb = now_s();
      const size_t s = in.segment_at(gblock);
      if (s != seg) {  // dynamic prompt: refresh the cross-attention cache (and re-cache)
        seg = s;
        pipe.set_context(in.context(seg));
        if (o.recache) recache(pipe, lat_blocks, offset, offset + b * nfpb, frame_seqlen, offset + F);
      }
      const int64_t f0 = offset + b * nfpb;
      torch::Tensor blk;
      if (b < num_start) {
        blk = start_latents.slice(1, b * nfpb, (b + 1) * nfpb);
        pipe.write_context_frames(blk, f0);
      } else {
        auto x = in.v2v_noised.defined() ? in.v2v_noised.slice(1, b * nfpb, (b + 1) * nfpb)
                                         : noise.slice(1, b * nfpb, (b + 1) * nfpb);
        blk = pipe.step_frames(x, f0, in.gen);
      }
      lat_blocks.push_back(blk);
      sinks.add(decode(blk));
      res.block_s.push_back(now_s() - tb);
      if (o.on_block) o.on_block(gblock, sinks.frames);
      bar.add(1, c10::str("| block ", res.block_s.back(), "s, prompt ", seg));
    }
    res.kv_cache_bytes = std::max(res.kv_cache_bytes, pipe.cache()->bytes());
    auto lat = torch::cat(lat_blocks, 1);  // [1,offset+F,C,h,w]
    if (R > 1) {
      auto tail = sinks.take_held();  // the last pixel_frames_for(K) frames: regenerated next
      if (r + 1 < R) start_latents = overlap_start(lat, tail, K, vae_.get());
      kept_latents.push_back(lat.slice(1, 0, lat.size(1) - K));
    } else {
      kept_latents.push_back(lat);
    }
  }
  bar.finish();
  res.latents = torch::cat(kept_latents, 1)[0].cpu().contiguous();
  return res;
}

SampleResult VideoGenerator::run_whole(const SampleSpec& spec, Sinks& sinks, double t0) {
  const auto& o = opts_;
  const auto& mc = model_->config();
  SampleResult res;
  auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(spec.seed));
  auto noise = core::randn({1, o.num_frames, mc.in_dim, o.latent_height, o.latent_width}, gen,
                           torch::TensorOptions().device(o.device));
  auto ctx = encode_prompt(spec.prompt);
  models::WanDiffusionWrapper wrapper(model_, /*causal=*/false, o.num_frame_per_block,
                                      o.timestep_shift);
  torch::Tensor lat;
  if (o.mode == "bidirectional") {
    lat = sample_bidirectional(wrapper, noise, ctx, o.denoising_steps, gen);
  } else {
    auto unc = encode_prompt(o.negative_prompt);
    auto traj = sample_teacher(wrapper, noise, ctx, unc, o.teacher_steps, o.guidance_scale,
                               o.timestep_shift);
    lat = traj.trajectory.select(1, traj.trajectory.size(1) - 1);
  }
  BlockDecoder decode{vae_.get(), o.preview_scale, nullptr};
  decode.reset();
  sinks.on_first = [&] { res.first_frame_s = now_s() - t0; };
  sinks.add(decode(lat));
  res.block_s.push_back(now_s() - t0);
  res.latents = lat[0].cpu().contiguous();
  return res;
}

void register_builtins() {
  data::register_text_encoder("hash", [](const data::TextConditionerOptions& o) {
    TORCH_CHECK(o.text_dim > 0, "text encoder hash: want the model's text_dim (got ",
                o.text_dim, ")");
    return std::make_unique<HashTextConditioner>(o.text_len, o.text_dim);
  });
}

}  // namespace causvid::inference
