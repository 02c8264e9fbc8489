// models/wan/wan_wrapper.cpp: see wan_wrapper.h.
#include "models/wan/wan_wrapper.h"

namespace causvid::models {

WanDiffusionWrapper::WanDiffusionWrapper(WanModel model, bool causal, int64_t nfpb,
                                         double timestep_shift)
    : model_(std::move(model)),
      causal_(causal),
      nfpb_(nfpb),
      scheduler_(FlowMatchScheduler::wan_training(timestep_shift)) {}

torch::Tensor WanDiffusionWrapper::to_x0(const torch::Tensor& flow_BCFHW,
                                         const torch::Tensor& x, const torch::Tensor& t) const {
  auto flow = flow_BCFHW.permute({0, 2, 1, 3, 4});  // -> [B,F,C,H,W]
  auto x0 = scheduler_.x0_from_flow(flow.flatten(0, 1), x.flatten(0, 1), t.flatten());
  return x0.view(x.sizes());
}

torch::Tensor WanDiffusionWrapper::flow(const torch::Tensor& x, const torch::Tensor& t,
                                        const torch::Tensor& ctx) const {
  TORCH_CHECK(x.dim() == 5 && t.dim() == 2 && t.size(0) == x.size(0) && t.size(1) == x.size(1),
              "wrapper: x ", x.sizes(), " and timestep ", t.sizes(),
              " must be [B,F,C,H,W] and [B,F]");
  auto xin = x.permute({0, 2, 1, 3, 4});
  if (causal_) return model_->forward_causal(xin, t, ctx, nfpb_).permute({0, 2, 1, 3, 4});
  return model_->forward(xin, t.select(1, 0), ctx).permute({0, 2, 1, 3, 4});
}

torch::Tensor WanDiffusionWrapper::flow_teacher_forcing(const torch::Tensor& x,
                                                        const torch::Tensor& t,
                                                        const torch::Tensor& ctx,
                                                        const torch::Tensor& clean,
                                                        const torch::Tensor& clean_t) const {
  TORCH_CHECK(causal_, "teacher forcing needs a causal model");
  TORCH_CHECK(x.dim() == 5 && t.dim() == 2 && t.size(0) == x.size(0) && t.size(1) == x.size(1),
              "wrapper: x ", x.sizes(), " and timestep ", t.sizes(),
              " must be [B,F,C,H,W] and [B,F]");
  const auto dev = model_->device();
  auto f = model_->forward_teacher_forcing(
      x.to(dev).permute({0, 2, 1, 3, 4}), t.to(dev), ctx, clean.to(dev).permute({0, 2, 1, 3, 4}),
      clean_t.defined() ? clean_t.to(dev) : clean_t, nfpb_);
  return f.permute({0, 2, 1, 3, 4});
}

torch::Tensor WanDiffusionWrapper::forward(const torch::Tensor& x_in, const torch::Tensor& t_in,
                                           const torch::Tensor& ctx) const {
  const auto dev = model_->device();
  auto x = x_in.to(dev), t = t_in.to(dev);
  auto f = flow(x, t, ctx);
  return to_x0(f.permute({0, 2, 1, 3, 4}), x, t);
}

torch::Tensor WanDiffusionWrapper::forward_cached(const torch::Tensor& x_in, const torch::Tensor& t_in,
                                                  const torch::Tensor& ctx, KvCache& cache,
                                                  CrossAttnCache& xcache,
                                                  int64_t current_start) const {
  TORCH_CHECK(causal_, "forward_cached: the KV cache needs a causal model");
  const auto dev = model_->device();
  auto x = x_in.to(dev), t = t_in.to(dev);
  auto f = model_->forward_cached(x.permute({0, 2, 1, 3, 4}), t, ctx, cache, xcache,
                                  current_start);
  return to_x0(f, x, t);
}

}  // namespace causvid::models
