// toy/sampling.cpp: see sampling.h.
#include "toy/sampling.h"

#include "core/config.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/random.h"
#include "core/runtime.h"
#include "data/text_from_config.h"
#include "inference/causal_pipeline.h"
#include "inference/step_list.h"
#include "models/wan/wan_loader.h"

namespace causvid::toy {

torch::Tensor sample_from_checkpoint(const SampleArgs& a, const std::vector<std::string>& prompts) {
  auto cfg = core::load_config(a.config, a.sets);
  auto wc = models::wan_config(cfg);
  models::WanModel net(wc);
  models::load_wan_weights(net, a.checkpoint, a.which);
  const auto dev = core::resolve_device(a.device);
  net->to(dev);
  net->eval();
  for (auto& p : net->parameters()) p.set_requires_grad(false);

  auto text = data::text_conditioner_from_config(cfg);

  const auto& shp = cfg.image_or_video_shape;  // [B, F, C, H, W]
  const int64_t F = a.frames > 0 ? a.frames : shp.at(1);
  const int64_t C = shp.at(2), H = shp.at(3), W = shp.at(4);
  const int64_t nfpb = cfg.num_frame_per_block;
  // The samplers' step list as the trainers use it (warped when warp_denoising_step,
  // without the causal list's trailing 0: that pass is the KV-cache write).
  const std::vector<double> steps = inference::sampling_step_list(cfg);
  const double shift = a.shift > 0 ? a.shift : cfg.scheduler_shift;
  const double g = a.guidance >= 0 ? a.guidance : cfg.real_guidance_scale;
  LOG_INFO("eval toy: sampler %s, %s, %d prompts, %d frames of %dx%d, %s", a.sampler,
           a.checkpoint, prompts.size(), F, H, W,
           a.sampler == "teacher" || a.sampler == "causal_teacher"
               ? absl::StrFormat("%d steps, guidance %.2f, shift %.1f", a.steps, g,
                                 a.sampler == "teacher" || a.shift > 0
                                     ? shift
                                     : cfg.generator_scheduler_shift())
               : absl::StrFormat("%d-step list", steps.size()));
  if (a.sampler == "causal" || a.sampler == "causal_teacher")
    TORCH_CHECK(F % nfpb == 0, "--frames: ", F, " is not a multiple of num_frame_per_block ",
                nfpb);

  c10::InferenceMode im;
  auto gen = at::detail::createCPUGenerator(a.seed);
  std::vector<torch::Tensor> out;
  const int64_t n = static_cast<int64_t>(prompts.size());
  core::Progress progress("eval toy: sampled", n, /*interval_s=*/10.0, a.quiet);
  for (int64_t b0 = 0; b0 < n; b0 += a.batch) {
    const int64_t b1 = std::min(n, b0 + a.batch);
    std::vector<std::string> ps(prompts.begin() + b0, prompts.begin() + b1);
    auto ctx = text->encode(ps).to(dev, torch::kFloat32);
    auto noise = core::randn({b1 - b0, F, C, H, W}, gen, torch::TensorOptions().device(dev));
    torch::Tensor video;
    if (a.sampler == "teacher") {
      models::WanDiffusionWrapper w(net, /*causal=*/false, nfpb, cfg.scheduler_shift);
      auto un = text->encode({cfg.negative_prompt}).to(dev, torch::kFloat32).expand_as(ctx).contiguous();
      video = inference::sample_teacher(w, noise, ctx, un, a.steps, g, shift).trajectory.select(1, -1);
    } else if (a.sampler == "causal_teacher") {
      // A causal teacher (teacher_forcing stage): its N-step CFG Euler sampler block by block
      // with the KV cache, on the generator's grid.
      models::WanDiffusionWrapper w(net, /*causal=*/true, nfpb, cfg.generator_scheduler_shift());
      auto un = text->encode({cfg.negative_prompt}).to(dev, torch::kFloat32).expand_as(ctx).contiguous();
      const double cshift = a.shift > 0 ? a.shift : cfg.generator_scheduler_shift();
      video = inference::sample_causal_teacher(w, noise, ctx, un, a.steps, g, cshift)
                  .trajectory.select(1, -1);
    } else if (a.sampler == "bidirectional") {
      models::WanDiffusionWrapper w(net, /*causal=*/false, nfpb, cfg.generator_scheduler_shift());
      video = inference::sample_bidirectional(w, noise, ctx, steps, gen);
    } else if (a.sampler == "causal") {
      models::WanDiffusionWrapper w(net, /*causal=*/true, nfpb, cfg.generator_scheduler_shift());
      inference::CausalSamplerOptions so;
      so.denoising_step_list = steps;
      so.num_frame_per_block = nfpb;
      so.window_frames = a.window_frames;
      so.sink_frames = a.sink_frames;
      inference::CausalPipeline pipe(w, so);
      video = pipe.generate(noise, ctx, {}, gen);
    } else {
      TORCH_CHECK(false, "--sampler: got '", a.sampler, "', want teacher, bidirectional, causal or causal_teacher");
    }
    out.push_back(video.to(torch::kCPU, torch::kFloat32).clone());
    progress.add(b1 - b0);
  }
  progress.finish();
  return torch::cat(out, 0);
}

}  // namespace causvid::toy
