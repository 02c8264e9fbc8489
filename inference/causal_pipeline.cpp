// inference/causal_pipeline.cpp: see causal_pipeline.h.
#include "inference/causal_pipeline.h"

#include <tuple>
#include <utility>

#include "core/random.h"

namespace causvid::inference {

namespace {

torch::Tensor randn_like_gen(const torch::Tensor& x, c10::optional<at::Generator> gen) {
  if (!gen) return torch::randn_like(x);
  return core::randn_like(x, *gen);
}

}  // namespace

CausalPipeline::CausalPipeline(models::WanDiffusionWrapper& generator, CausalSamplerOptions opts)
    : gen_(generator), opts_(std::move(opts)) {
  TORCH_CHECK(gen_.causal(), "CausalPipeline: the generator must be a causal model");
  TORCH_CHECK(opts_.num_frame_per_block > 0, "num_frame_per_block: want > 0");
  TORCH_CHECK(!opts_.denoising_step_list.empty(), "denoising_step_list: want at least one step");
}

void CausalPipeline::set_context(const torch::Tensor& context) {
  context_ = context;
  xcache_.reset();
}

void CausalPipeline::reset(int64_t batch, int64_t frame_seqlen, int64_t total_frames) {
  frame_seqlen_ = frame_seqlen;
  auto o = gen_.model()->kv_cache_options(batch, frame_seqlen, total_frames);
  if (opts_.window_frames >= 0) {
    o.window_frames = opts_.window_frames;
    o.sink_frames = opts_.sink_frames;
  }
  const bool reusable = cache_ && cache_->options().batch == o.batch &&
                        cache_->options().frame_seqlen == o.frame_seqlen &&
                        cache_->options().dtype == o.dtype &&
                        cache_->capacity_tokens() >=
                            (o.window_frames >= 0 ? (o.window_frames + o.sink_frames)
                                                  : o.max_frames) * o.frame_seqlen &&
                        cache_->rolling() == (o.window_frames >= 0);
  if (reusable) {
    cache_->reset();
  } else {
    cache_ = std::make_unique<models::KvCache>(o);
  }
  xcache_.reset();
}

void CausalPipeline::write_context_block(const torch::Tensor& clean, int64_t block_index) {
  write_context_frames(clean, block_index * opts_.num_frame_per_block);
}

torch::Tensor CausalPipeline::step_block(const torch::Tensor& noise_block, int64_t block_index,
                                         c10::optional<at::Generator> gen) {
  return step_frames(noise_block, block_index * opts_.num_frame_per_block, gen);
}

void CausalPipeline::write_context_frames(const torch::Tensor& clean, int64_t start_frame) {
  TORCH_CHECK(cache_, "CausalPipeline: reset() before write_context_frames()");
  const int64_t B = clean.size(0), f = clean.size(1);
  const int64_t start = start_frame * frame_seqlen_;
  auto t0 = torch::zeros({B, f}, clean.options().dtype(torch::kFloat32));
  gen_.forward_cached(clean, t0, context_, *cache_, xcache_, start);
}

torch::Tensor CausalPipeline::step_frames(const torch::Tensor& noise_block, int64_t start_frame,
                                          c10::optional<at::Generator> gen) {
  TORCH_CHECK(cache_, "CausalPipeline: reset() before step_block()");
  TORCH_CHECK(context_.defined(), "CausalPipeline: no text context set");
  const int64_t B = noise_block.size(0), f = noise_block.size(1);
  const int64_t start = start_frame * frame_seqlen_;
  const auto& steps = opts_.denoising_step_list;
  auto x = noise_block;
  torch::Tensor pred;
  for (size_t i = 0; i < steps.size(); ++i) {
    auto t = torch::full({B, f}, steps[i], noise_block.options().dtype(torch::kFloat32));
    pred = gen_.forward_cached(x, t, context_, *cache_, xcache_, start);
    if (i + 1 < steps.size()) {
      auto next = torch::full({B * f}, steps[i + 1], noise_block.options().dtype(torch::kFloat32));
      auto flat = pred.flatten(0, 1);
      x = gen_.scheduler().add_noise(flat, randn_like_gen(flat, gen), next).view(pred.sizes());
    }
  }
  write_context_frames(pred, start_frame);  // timestep-0 pass: clean block into the cache
  return pred;
}

torch::Tensor CausalPipeline::generate(const torch::Tensor& noise, const torch::Tensor& context,
                                       const torch::Tensor& start_latents,
                                       c10::optional<at::Generator> gen, const BlockFn& on_block) {
  TORCH_CHECK(noise.dim() == 5, "noise: got ", noise.sizes(), ", want [B,F,C,H,W]");
  const int64_t B = noise.size(0), F = noise.size(1), H = noise.size(3), W = noise.size(4);
  const int64_t nfpb = opts_.num_frame_per_block;
  TORCH_CHECK(F % nfpb == 0, "num_frames: ", F, " latent frames are not divisible by "
              "num_frame_per_block ", nfpb);
  const auto& ps = gen_.model()->config().patch_size;
  set_context(context);
  reset(B, (H / ps[1]) * (W / ps[2]), F);
  auto output = torch::zeros_like(noise);
  int64_t num_input_blocks = 0;
  if (start_latents.defined()) {
    TORCH_CHECK(start_latents.dim() == 5 && start_latents.size(1) % nfpb == 0 &&
                    start_latents.size(1) <= F,
                "start_latents: got ", start_latents.sizes(), ", want [B, k*", nfpb,
                " <= ", F, ", C, H, W]");
    num_input_blocks = start_latents.size(1) / nfpb;
  }
  for (int64_t b = 0; b < F / nfpb; ++b) {
    torch::Tensor block;
    if (b < num_input_blocks) {
      block = start_latents.slice(1, b * nfpb, (b + 1) * nfpb);
      write_context_block(block, b);
    } else {
      block = step_block(noise.slice(1, b * nfpb, (b + 1) * nfpb), b, gen);
    }
    output.slice(1, b * nfpb, (b + 1) * nfpb).copy_(block);
    if (on_block) on_block(b, block);
  }
  return output;
}

torch::Tensor sample_bidirectional(const models::WanDiffusionWrapper& g, const torch::Tensor& noise,
                                   const torch::Tensor& context, const std::vector<double>& steps,
                                   c10::optional<at::Generator> gen) {
  TORCH_CHECK(!steps.empty(), "denoising_step_list: want at least one step");
  const int64_t B = noise.size(0), F = noise.size(1);
  auto x = noise;
  torch::Tensor pred;
  for (size_t i = 0; i < steps.size(); ++i) {
    auto t = torch::full({B, F}, steps[i], noise.options().dtype(torch::kFloat32));
    pred = g.forward(x, t, context);
    if (i + 1 < steps.size()) {
      auto flat = pred.flatten(0, 1);
      x = g.scheduler()
              .add_noise(flat, randn_like_gen(flat, gen),
                         torch::full({B * F}, steps[i + 1], t.options()))
              .view(pred.sizes());
    }
  }
  return pred;
}

namespace {

// One Euler step of the teacher sampler with CFG on the x0 predictions (cond c, uncond u)
// of `x` at grid timesteps t [B, f]: returns (next x, flow).
std::pair<torch::Tensor, torch::Tensor> cfg_euler_step(const models::FlowMatchScheduler& grid,
                                                       const torch::Tensor& x,
                                                       const torch::Tensor& t,
                                                       const torch::Tensor& c,
                                                       const torch::Tensor& u, double g) {
  auto x0 = u + g * (c - u);
  auto tf = t.flatten();
  auto flow = grid.flow_from_x0(x0.flatten(0, 1), x.flatten(0, 1), tf);
  return {grid.step(flow, tf, x.flatten(0, 1)).view(x.sizes()), flow.view(x.sizes())};
}

}  // namespace

TeacherTrajectory sample_teacher(const models::WanDiffusionWrapper& teacher,
                                 const torch::Tensor& noise, const torch::Tensor& cond,
                                 const torch::Tensor& uncond, int64_t N, double g, double shift,
                                 bool keep) {
  auto grid = models::FlowMatchScheduler::wan_sampling(N, shift);
  const int64_t B = noise.size(0), F = noise.size(1);
  std::vector<torch::Tensor> traj, xc, xu, fl;
  auto lat = noise;
  for (int64_t i = 0; i < N; ++i) {
    auto tv = grid.timesteps[i];
    auto t = tv.expand({B, F}).contiguous().to(noise.device());
    traj.push_back(lat);
    auto c = teacher.forward(lat, t, cond);
    auto u = teacher.forward(lat, t, uncond);
    torch::Tensor flow;
    std::tie(lat, flow) = cfg_euler_step(grid, lat, t, c, u, g);
    if (keep) {
      xc.push_back(c);
      xu.push_back(u);
      fl.push_back(flow);
    }
  }
  traj.push_back(lat);
  TeacherTrajectory out;
  out.trajectory = torch::stack(traj, 1);
  if (keep) {
    out.x0_cond = torch::stack(xc, 1);
    out.x0_uncond = torch::stack(xu, 1);
    out.flow = torch::stack(fl, 1);
  }
  out.timesteps = grid.timesteps;
  out.sigmas = grid.sigmas;
  return out;
}

TeacherTrajectory sample_causal_teacher(const models::WanDiffusionWrapper& teacher,
                                        const torch::Tensor& noise, const torch::Tensor& cond,
                                        const torch::Tensor& uncond, int64_t N, double g,
                                        double shift) {
  TORCH_CHECK(teacher.causal(), "sample_causal_teacher: the teacher must be a causal model");
  TORCH_CHECK(noise.dim() == 5, "noise: got ", noise.sizes(), ", want [B,F,C,H,W]");
  auto grid = models::FlowMatchScheduler::wan_sampling(N, shift);
  const int64_t B = noise.size(0), F = noise.size(1), H = noise.size(3), W = noise.size(4);
  const int64_t nfpb = teacher.num_frame_per_block();
  TORCH_CHECK(F % nfpb == 0, "sample_causal_teacher: ", F, " frames are not a multiple of ",
              "num_frame_per_block ", nfpb);
  const auto& ps = teacher.model()->config().patch_size;
  const int64_t fs = (H / ps[1]) * (W / ps[2]);
  // One cache per CFG branch: each branch attends to the past under its own text.
  models::KvCache kc(teacher.model()->kv_cache_options(B, fs, F));
  models::KvCache ku(teacher.model()->kv_cache_options(B, fs, F));
  models::CrossAttnCache xc, xu;
  auto un = uncond.expand({B, uncond.size(1), uncond.size(2)});
  std::vector<std::vector<torch::Tensor>> points(N + 1);  // per trajectory point, the blocks
  const auto f32 = noise.options().dtype(torch::kFloat32);
  for (int64_t b = 0; b < F / nfpb; ++b) {
    const int64_t start = b * nfpb * fs;
    auto x = noise.slice(1, b * nfpb, (b + 1) * nfpb);
    for (int64_t i = 0; i < N; ++i) {
      points[i].push_back(x);
      auto t = grid.timesteps[i].expand({B, nfpb}).contiguous().to(noise.device());
      auto c = teacher.forward_cached(x, t, cond, kc, xc, start);
      auto u = teacher.forward_cached(x, t, un, ku, xu, start);
      x = cfg_euler_step(grid, x, t, c, u, g).first;
    }
    points[N].push_back(x);
    // The final block becomes context of both branches (timestep 0), as the causal sampler.
    auto t0 = torch::zeros({B, nfpb}, f32);
    teacher.forward_cached(x, t0, cond, kc, xc, start);
    teacher.forward_cached(x, t0, un, ku, xu, start);
  }
  std::vector<torch::Tensor> traj;
  for (auto& p : points) traj.push_back(torch::cat(p, 1));
  TeacherTrajectory out;
  out.trajectory = torch::stack(traj, 1);
  out.timesteps = grid.timesteps;
  out.sigmas = grid.sigmas;
  return out;
}

}  // namespace causvid::inference
