// losses/losses.cpp: see losses.h.
#include "losses/losses.h"

namespace causvid::losses {

torch::Tensor process_timestep(const torch::Tensor& t, const std::string& type, int64_t nfpb) {
  TORCH_CHECK(t.dim() == 2, "timestep: want [B,F], got ", t.sizes());
  if (type == "bidirectional_video") return t.select(1, 0).unsqueeze(1).expand(t.sizes()).clone();
  if (type == "causal_video") {
    TORCH_CHECK(nfpb > 0 && t.size(1) % nfpb == 0, "num_frame_per_block: ", t.size(1),
                " frames are not divisible by ", nfpb);
    auto r = t.reshape({t.size(0), -1, nfpb});
    return r.select(2, 0).unsqueeze(2).expand(r.sizes()).reshape(t.sizes()).clone();
  }
  TORCH_CHECK(false, "task type: got '", type, "', want bidirectional_video or causal_video");
}

torch::Tensor sample_dmd_timestep(int64_t B, int64_t F, const std::string& type, int64_t nfpb,
                                  double shift, double min_step, double max_step,
                                  core::RandomSource& rng, int64_t T) {
  auto raw = rng.randint(0, T, {B, F}, torch::TensorOptions().dtype(torch::kInt64));
  raw = process_timestep(raw, type, nfpb);
  return models::shift_timestep(raw, shift, min_step, max_step, T);
}

torch::Tensor sample_ode_index(int64_t B, int64_t F, int64_t S, const std::string& type,
                               int64_t nfpb, core::RandomSource& rng) {
  auto raw = rng.randint(0, S, {B, F}, torch::TensorOptions().dtype(torch::kInt64));
  return process_timestep(raw, type, nfpb);
}

LossOutput dmd_loss(const models::WanDiffusionWrapper& real, const models::WanDiffusionWrapper& fake,
                    const torch::Tensor& x0, const torch::Tensor& timestep,
                    const torch::Tensor& noise, const torch::Tensor& cond,
                    const torch::Tensor& uncond, const DmdOptions& opts) {
  LossOutput out;
  torch::Tensor grad;
  {
    torch::NoGradGuard ng;
    const auto& sch = opts.scheduler ? *opts.scheduler : fake.scheduler();
    auto noisy = sch.add_noise(x0.detach().flatten(0, 1), noise.flatten(0, 1), timestep.flatten())
                     .view(x0.sizes());
    const int64_t B = noisy.size(0);
    // Contexts of different lengths are zero-padded (WanModel pads to text_len with zeros).
    const int64_t T = std::max(cond.size(1), uncond.size(1));
    auto pad = [&](const torch::Tensor& c) {
      auto e = c.expand({B, c.size(1), c.size(2)});
      return c.size(1) == T ? e : torch::constant_pad_nd(e, {0, 0, 0, T - c.size(1)});
    };
    auto pred_fake = fake.forward(noisy, timestep, cond);
    if (opts.fake_guidance_scale != 0.0) {
      auto fake_uncond = fake.forward(noisy, timestep, pad(uncond));
      pred_fake = pred_fake + (pred_fake - fake_uncond) * opts.fake_guidance_scale;
    }
    // Conditional and unconditional branches in one batched call (same math per sample).
    auto both = real.forward(torch::cat({noisy, noisy}), torch::cat({timestep, timestep}),
                             torch::cat({pad(cond), pad(uncond)}));
    auto real_cond = both.slice(0, 0, B), real_uncond = both.slice(0, B, 2 * B);
    // reference: pred_real_image_cond + (cond - uncond) * real_guidance_scale
    auto pred_real = real_cond + (real_cond - real_uncond) * opts.real_guidance_scale;
    grad = pred_fake - pred_real;
    if (opts.normalization) {
      auto normalizer = (x0.detach() - pred_real).abs().mean({1, 2, 3, 4}, true);
      grad = grad / normalizer;
    }
    grad = torch::nan_to_num(grad);
    out.tensors = {{"noisy", noisy},          {"pred_fake_image", pred_fake},
                   {"pred_real_cond", real_cond}, {"pred_real_uncond", real_uncond},
                   {"pred_real_image", pred_real}, {"grad", grad}};
    // CausVid's "dmdtrain_gradient_norm": mean |grad|.
    out.metrics["dmd_gradient_norm"] = grad.abs().mean().item<double>();
  }
  auto xd = x0.to(torch::kFloat64);
  auto target = (xd - grad.to(torch::kFloat64)).detach();
  if (opts.mask.defined()) {
    auto m = opts.mask.to(x0.device()).expand(x0.sizes());
    out.loss = 0.5 * torch::mse_loss(xd.masked_select(m), target.masked_select(m));
  } else {
    out.loss = 0.5 * torch::mse_loss(xd, target);
  }
  return out;
}

LossOutput critic_loss(const models::WanDiffusionWrapper& fake, const torch::Tensor& x0_in,
                       const torch::Tensor& timestep, const torch::Tensor& noise,
                       const torch::Tensor& cond, const std::string& type,
                       const models::FlowMatchScheduler* scheduler) {
  LossOutput out;
  auto x0 = x0_in.detach();
  const auto& sch = scheduler ? *scheduler : fake.scheduler();
  auto tf = timestep.flatten();
  auto noisy = sch.add_noise(x0.flatten(0, 1), noise.flatten(0, 1), tf).view(x0.sizes());
  auto pred = fake.forward(noisy, timestep, cond);
  out.tensors = {{"noisy", noisy}, {"pred_fake_image", pred}};
  if (type == "flow") {
    auto flow = sch.flow_from_x0(pred.flatten(0, 1), noisy.flatten(0, 1), tf);
    out.tensors["flow_pred"] = flow.view(x0.sizes());
    out.loss = torch::mean((flow - (noise.flatten(0, 1) - x0.flatten(0, 1))).pow(2));
  } else if (type == "x0") {
    out.loss = torch::mean((x0 - pred).pow(2));
  } else if (type == "noise") {
    // flow matching: xt = (1-s) x0 + s n  =>  n = (xt - (1-s) x0) / s
    auto s = sch.sigma_at(tf).view({-1, 1, 1, 1}).to(pred.device(), pred.scalar_type());
    auto noise_pred = (noisy.flatten(0, 1) - (1 - s) * pred.flatten(0, 1)) / s;
    out.loss = torch::mean((noise.flatten(0, 1) - noise_pred).pow(2));
  } else {
    TORCH_CHECK(false, "denoising_loss_type: got '", type,
                "', want flow, x0 or noise (v needs alphas_cumprod, which flow matching has not)");
  }
  return out;
}

LossOutput ode_loss(const models::WanDiffusionWrapper& gen, const torch::Tensor& ode_latent,
                    const torch::Tensor& index, const torch::Tensor& steps,
                    const torch::Tensor& cond) {
  TORCH_CHECK(ode_latent.dim() == 6, "ode_latent: got ", ode_latent.sizes(),
              ", want [B,S,F,C,H,W]");
  const int64_t B = ode_latent.size(0), S = ode_latent.size(1), F = ode_latent.size(2);
  TORCH_CHECK(steps.numel() == S, "denoising_step_list: ", steps.numel(),
              " steps for an ODE latent with ", S, " trajectory points");
  TORCH_CHECK(index.sizes() == torch::IntArrayRef({B, F}), "index: want [", B, ",", F, "]");
  LossOutput out;
  auto target = ode_latent.select(1, S - 1);
  const auto dev = ode_latent.device();
  auto idx = index.to(dev).view({B, 1, F, 1, 1, 1}).expand({B, 1, F, ode_latent.size(3),
                                                    ode_latent.size(4), ode_latent.size(5)});
  auto noisy = torch::gather(ode_latent, 1, idx).squeeze(1);
  auto timestep = steps.to(dev, torch::kFloat32).index({index.to(dev)});  // [B,F]
  auto pred = gen.forward(noisy, timestep, cond);
  auto mask = timestep != 0;  // [B,F] selects whole frames
  out.tensors = {{"noisy_input", noisy}, {"timestep", timestep}, {"pred", pred}};
  if (!mask.any().item<bool>()) {
    // The reference's mse over an empty selection is NaN; a zero loss that keeps the graph
    // (so backward and the optimizer step stay valid) is what a trainer needs.
    out.loss = (pred * 0).sum();
    out.metrics["ode_all_clean"] = 1;
    return out;
  }
  // In fp32 (a bf16 prediction against the fp32 trajectory: the same value as the
  // reference's promoted mse, and a backward whose gradient dtype matches the prediction).
  out.loss = torch::mse_loss(pred.index({mask}).to(torch::kFloat32),
                             target.index({mask}).to(torch::kFloat32));
  return out;
}

}  // namespace causvid::losses
