// models/vae/wan_vae_wrapper.cpp: WanVAEWrapper (normalized latents <-> pixels, the reference's
// wan_wrapper.py WanVAEWrapper) and WanVAEStreamDecoder (chunked causal decoding with a kept
// cache); see wan_vae.h. Split from wan_vae.cpp, which holds the network.
#include "models/vae/wan_vae.h"

#include <sstream>

#include "core/tensor_io.h"

namespace causvid::models {
namespace {

std::string shape_str(const torch::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

}  // namespace

// ------------------------------------------------------------------ wrapper + streaming

WanVAEWrapper::WanVAEWrapper(const WanVAEConfig& cfg)
    : WanVAEWrapper(cfg, torch::tensor(wan21_latent_mean()), torch::tensor(wan21_latent_std())) {}

WanVAEWrapper::WanVAEWrapper(const WanVAEConfig& cfg, torch::Tensor mean, torch::Tensor std) {
  TORCH_CHECK(mean.numel() == cfg.z_dim && std.numel() == cfg.z_dim,
              "WanVAEWrapper: got latent mean/std with ", mean.numel(), "/", std.numel(),
              " entries, want z_dim = ", cfg.z_dim,
              " (Wan2.1's constants have 16; other z_dim need explicit statistics)");
  model_ = WanVAE(cfg);
  model_->eval();
  for (auto& p : model_->parameters()) p.set_requires_grad(false);  // .requires_grad_(False)
  mean_ = mean.to(torch::kFloat).flatten();
  std_ = std.to(torch::kFloat).flatten();
}

void WanVAEWrapper::to(torch::Device device, torch::ScalarType dtype) {
  model_->to(device, dtype);
  mean_ = mean_.to(device);
  std_ = std_.to(device);
}

void WanVAEWrapper::load(const core::TensorMap& sd, const std::string& source) {
  load_wan_vae(model_, sd, source);
}

void WanVAEWrapper::load_file(const std::string& path) {
  // Wan2.1_VAE.pth (torch.save) or a safetensors file with the same keys.
  load(core::load_weights(path), path);
}

torch::Tensor WanVAEWrapper::encode_to_latent(const torch::Tensor& pixel_BCFHW) {
  model_->check_video(pixel_BCFHW, "WanVAEWrapper.encode_to_latent: pixel");
  torch::NoGradGuard no_grad;
  // Inputs on another device / in another dtype are moved to the weights'.
  const auto w = model_->parameters().front();
  auto lat = model_->encode(pixel_BCFHW.to(w.device(), w.scalar_type()), mean_,
                            1.0 / std_);  // [B,z,F',h,w]
  return lat.to(torch::kFloat).permute({0, 2, 1, 3, 4}).contiguous();
}

torch::Tensor WanVAEWrapper::decode_to_pixel(const torch::Tensor& latent_BFCHW) {
  WanVAEStreamDecoder s(*this);
  return s.push_impl(latent_BFCHW, "WanVAEWrapper.decode_to_pixel: latent");
}

WanVAEStreamDecoder WanVAEWrapper::stream_decoder() { return WanVAEStreamDecoder(*this); }

WanVAEStreamDecoder::WanVAEStreamDecoder(WanVAEWrapper& vae) : vae_(&vae) {}

void WanVAEStreamDecoder::reset() {
  caches_.clear();
  frames_ = 0;
  batch_ = h_ = w_ = -1;
}

int64_t WanVAEStreamDecoder::cache_bytes() const {
  int64_t n = 0;
  for (const auto& c : caches_) n += c.bytes();
  return n;
}

torch::Tensor WanVAEStreamDecoder::push_impl(const torch::Tensor& latent_BFCHW, const char* what) {
  const int64_t z = vae_->model_->config().z_dim;
  const auto& x = latent_BFCHW;
  TORCH_CHECK(x.defined() && x.dim() == 5, what, ": got shape ",
              x.defined() ? shape_str(x) : "undefined", ", want 5 dims [B,F,z,h,w]");
  TORCH_CHECK(x.size(2) == z, what, ": got ", x.size(2), " latent channels in dim 2 (shape ",
              shape_str(x), "), want z_dim = ", z, " ([B,F,z,h,w])");
  TORCH_CHECK(x.size(0) > 0 && x.size(1) > 0 && x.size(3) > 0 && x.size(4) > 0, what,
              ": got shape ", shape_str(x), ", want non-empty [B,F,z,h,w]");
  TORCH_CHECK(x.is_floating_point(), what, ": got dtype ", x.scalar_type(), ", want a float");
  if (batch_ >= 0)
    TORCH_CHECK(x.size(0) == batch_ && x.size(3) == h_ && x.size(4) == w_, what, ": got shape ",
                shape_str(x), ", want batch ", batch_, " and h x w = ", h_, " x ", w_,
                " as in the earlier blocks of this stream (reset() to start another video)");
  batch_ = x.size(0);
  h_ = x.size(3);
  w_ = x.size(4);
  if (caches_.empty()) caches_.resize(batch_);
  torch::NoGradGuard no_grad;
  const auto inv_std = 1.0 / vae_->std_;
  const auto w = vae_->model_->parameters().front();
  const auto xw = x.to(w.device(), w.scalar_type());
  std::vector<torch::Tensor> items;
  for (int64_t b = 0; b < batch_; ++b)
    items.push_back(vae_->model_->decode_frames(xw[b], vae_->mean_, inv_std, caches_[b]));
  frames_ += x.size(1);
  return torch::stack(items, 0).to(torch::kFloat).clamp_(-1, 1);
}

}  // namespace causvid::models
