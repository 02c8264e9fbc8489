// models/vae/wan_vae.cpp: the Wan2.1 causal 3D video VAE; see wan_vae.h for the layouts, the
// chunking and the deliberate differences from Wan-Video/Wan2.1 wan/modules/vae.py.
#include "models/vae/wan_vae.h"

#include "core/tensor_io.h"

#include <cmath>
#include <sstream>

#include "core/state_dict.h"

namespace causvid::models {

namespace {

constexpr auto kCL = torch::MemoryFormat::ChannelsLast;

std::string shape_str(const torch::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

// y[t] (+)= sum over the taps k of conv2d(x[t*stride_t + k], w[:,:,k]) for a weight
// w [Cout,Cin,kt,kh,kw]: a valid temporal conv over frames-major input [T,Cin,H,W].
torch::Tensor valid_temporal_conv(const torch::Tensor& x_TCHW, const torch::Tensor& w,
                                  const torch::Tensor& b, int64_t stride_t, int64_t pad_hw) {
  const int64_t kt = w.size(2), num_in = x_TCHW.size(0);
  TORCH_INTERNAL_ASSERT(num_in >= kt, "valid_temporal_conv: ", num_in, " frames < kernel ", kt);
  const int64_t num_out = (num_in - kt) / stride_t + 1;
  torch::Tensor y;
  for (int64_t k = kt - 1; k >= 0; --k) {
    auto xs = x_TCHW.slice(0, k, k + (num_out - 1) * stride_t + 1, stride_t);
    if (stride_t > 1) xs = xs.contiguous(kCL);
    auto yk = torch::conv2d(xs, w.select(2, k), k == kt - 1 ? b : torch::Tensor(), 1, pad_hw);
    y = y.defined() ? y.add_(yk) : yk;
  }
  return y;
}

torch::Tensor silu_inplace(torch::Tensor t) {
  torch::silu_(t);
  return t;
}

torch::Tensor apply_layer(const std::shared_ptr<torch::nn::Module>& m, const torch::Tensor& x,
                          CausalCache& cache) {
  if (auto* r = m->as<ResidualBlockImpl>()) return r->forward(x, cache);
  if (auto* a = m->as<AttentionBlockImpl>()) return a->forward(x);
  if (auto* s = m->as<ResampleImpl>()) return s->forward(x, cache);
  TORCH_INTERNAL_ASSERT(false, "wan_vae: unexpected layer ", m->name());
}

// Runs fn on each frame of x alone (the frames sharing the cache slots from `mark` on, in
// time order) and concatenates the results in time.
template <typename Fn>
torch::Tensor per_frame(const torch::Tensor& x_TCHW, CausalCache& cache, Fn&& fn) {
  if (x_TCHW.size(0) == 1) return fn(x_TCHW);
  const size_t mark = cache.next;
  std::vector<torch::Tensor> outs;
  for (int64_t t = 0; t < x_TCHW.size(0); ++t) {
    cache.next = mark;
    outs.push_back(fn(x_TCHW.slice(0, t, t + 1)));
  }
  return torch::cat(outs, 0);
}

}  // namespace

// ------------------------------------------------------------------ config

void WanVAEConfig::validate() const {
  TORCH_CHECK(dim > 0, "wan_vae config dim: got ", dim, ", want > 0");
  TORCH_CHECK(z_dim > 0, "wan_vae config z_dim: got ", z_dim, ", want > 0");
  TORCH_CHECK(!dim_mult.empty() && dim_mult.size() <= 4,
              "wan_vae config dim_mult: got ", dim_mult.size(), " entries, want 1..4");
  for (auto m : dim_mult) TORCH_CHECK(m > 0, "wan_vae config dim_mult: got ", m, ", want > 0");
  TORCH_CHECK(num_res_blocks >= 0, "wan_vae config num_res_blocks: got ", num_res_blocks);
  TORCH_CHECK(temperal_downsample.size() + 1 == dim_mult.size(),
              "wan_vae config temperal_downsample: got ", temperal_downsample.size(),
              " entries, want len(dim_mult) - 1 = ", dim_mult.size() - 1);
  for (size_t i = 1; i < dim_mult.size(); ++i)
    TORCH_CHECK(dim * dim_mult[dim_mult.size() - i] / 2 > 0,
                "wan_vae config: decoder stage ", i, " would have 0 input channels");
}

WanVAEConfig WanVAEConfig::from_json(const nlohmann::json& j) {
  WanVAEConfig c;
  if (j.contains("dim")) c.dim = j.at("dim").get<int64_t>();
  if (j.contains("z_dim")) c.z_dim = j.at("z_dim").get<int64_t>();
  if (j.contains("dim_mult")) c.dim_mult = j.at("dim_mult").get<std::vector<int64_t>>();
  if (j.contains("num_res_blocks")) c.num_res_blocks = j.at("num_res_blocks").get<int64_t>();
  if (j.contains("attn_scales")) c.attn_scales = j.at("attn_scales").get<std::vector<double>>();
  if (j.contains("temperal_downsample"))
    c.temperal_downsample = j.at("temperal_downsample").get<std::vector<bool>>();
  if (j.contains("dropout")) c.dropout = j.at("dropout").get<double>();
  c.validate();
  return c;
}

int64_t WanVAEConfig::temporal_stride() const {
  int64_t s = 1;
  for (bool b : temperal_downsample) s *= b ? 2 : 1;
  return s;
}

int64_t WanVAEConfig::spatial_stride() const { return int64_t{1} << (dim_mult.size() - 1); }

const std::vector<float>& wan21_latent_mean() {
  static const std::vector<float> kMean = {-0.7571, -0.7089, -0.9113, 0.1075,  -0.1745, 0.9653,
                                           -0.1517, 1.5508,  0.4134,  -0.0715, 0.5517,  -0.3632,
                                           -0.1922, -0.9497, 0.2503,  -0.2921};
  return kMean;
}

const std::vector<float>& wan21_latent_std() {
  static const std::vector<float> kStd = {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708,
                                          2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
                                          1.6382, 1.1253, 2.8251, 1.9160};
  return kStd;
}

int64_t CausalCache::bytes() const {
  int64_t n = 0;
  for (const auto& s : slots)
    if (s.defined()) n += s.numel() * s.element_size();
  return n;
}

// ------------------------------------------------------------------ RMS_norm

VaeRMSNormImpl::VaeRMSNormImpl(int64_t dim, bool images) : dim_(dim) {
  gamma = register_parameter(
      "gamma", images ? torch::ones({dim, 1, 1}) : torch::ones({dim, 1, 1, 1}));
}

torch::Tensor VaeRMSNormImpl::forward(const torch::Tensor& x_TCHW) {
  // F.normalize(x, dim=1) * sqrt(C) * gamma; the norm is over channels of each pixel.
  auto n = x_TCHW.norm(2, {1}, /*keepdim=*/true).clamp_min_(1e-12);
  auto g = gamma.view({dim_, 1, 1}) * std::sqrt(static_cast<double>(dim_));
  return x_TCHW.div(n).mul_(g);
}

// ------------------------------------------------------------------ CausalConv3d

CausalConv3dImpl::CausalConv3dImpl(int64_t in, int64_t out, int64_t kt, int64_t k, int64_t pad_t,
                                   int64_t pad_hw)
    : kt_(kt), pad_t_(pad_t), pad_hw_(pad_hw) {
  TORCH_INTERNAL_ASSERT(pad_t == 0 || 2 * pad_t == kt - 1);
  weight = register_parameter("weight", torch::empty({out, in, kt, k, k}));
  bias = register_parameter("bias", torch::empty({out}));
  // nn.Conv3d's default init (weights are normally loaded; this keeps random-weight runs sane).
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * kt * k * k));
  bias.uniform_(-bound, bound);
}

torch::Tensor CausalConv3dImpl::forward_valid(const torch::Tensor& x_TCHW, int64_t stride_t) {
  return valid_temporal_conv(x_TCHW, weight, bias, stride_t, pad_hw_);
}

torch::Tensor CausalConv3dImpl::forward(const torch::Tensor& x_TCHW, torch::Tensor* cache) {
  if (pad_t_ == 0) return valid_temporal_conv(x_TCHW, weight, bias, 1, pad_hw_);
  // Input frames seen by the conv: [P leading zeros][hist: the n <= P cached frames][x], with
  // the history right-aligned (the reference's cache also holds 1 frame after a 1-frame first
  // chunk). Taps that read the implicit zeros are skipped; the others read hist or x directly,
  // so no concatenated copy of the chunk is made.
  const int64_t P = kt_ - 1, T = x_TCHW.size(0);
  torch::Tensor hist = cache && cache->defined() ? *cache : torch::Tensor();
  const int64_t n = hist.defined() ? hist.size(0) : 0;
  TORCH_INTERNAL_ASSERT(n <= P);
  // Tap P reads x[t] for every output t; it carries the bias.
  auto y = torch::conv2d(x_TCHW, weight.select(2, P), bias, 1, pad_hw_);
  for (int64_t k = 0; k < P; ++k) {
    auto wk = weight.select(2, k);
    // Output t reads input position k + t: history slot k + t - (P - n) while k + t < P.
    const int64_t h0 = std::max<int64_t>(0, P - n - k), h1 = std::min<int64_t>(T, P - k);
    if (h0 < h1) {
      auto src = hist.slice(0, k + h0 - (P - n), k + h1 - (P - n));
      y.slice(0, h0, h1).add_(torch::conv2d(src, wk, {}, 1, pad_hw_));
    }
    // ... and x[k + t - P] from t = P - k on.
    const int64_t x0 = std::max<int64_t>(0, P - k);
    if (x0 < T)
      y.slice(0, x0, T).add_(torch::conv2d(x_TCHW.slice(0, 0, T - x0), wk, {}, 1, pad_hw_));
  }
  if (cache) {
    // The last P frames of [hist, x] (fewer at the very start, like the reference).
    if (T >= P) {
      *cache = x_TCHW.slice(0, T - P, T).clone();
    } else {
      auto prev = n > 0 ? hist.slice(0, std::max<int64_t>(0, n - (P - T)), n) : hist;
      *cache = n > 0 ? torch::cat({prev, x_TCHW}, 0) : x_TCHW.clone();
    }
  }
  return y;
}

// ------------------------------------------------------------------ ResidualBlock

ResidualBlockImpl::ResidualBlockImpl(int64_t in, int64_t out, double dropout) {
  // residual = Sequential(RMS_norm, SiLU, CausalConv3d, RMS_norm, SiLU, Dropout, CausalConv3d)
  norm0_ = VaeRMSNorm(in, /*images=*/false);
  conv2_ = CausalConv3d(in, out, 3, 3, 1, 1);
  norm3_ = VaeRMSNorm(out, /*images=*/false);
  conv6_ = CausalConv3d(out, out, 3, 3, 1, 1);
  torch::nn::ModuleList residual;
  residual->push_back(norm0_);
  residual->push_back(torch::nn::SiLU());
  residual->push_back(conv2_);
  residual->push_back(norm3_);
  residual->push_back(torch::nn::SiLU());
  residual->push_back(torch::nn::Dropout(dropout));
  residual->push_back(conv6_);
  register_module("residual", residual);
  if (in != out) shortcut_ = register_module("shortcut", CausalConv3d(in, out, 1, 1, 0, 0));
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x_TCHW, CausalCache& cache) {
  auto y = silu_inplace(norm0_->forward(x_TCHW));
  y = conv2_->forward(y, &cache.slot());
  y = silu_inplace(norm3_->forward(y));  // dropout: identity at inference
  y = conv6_->forward(y, &cache.slot());
  return y.add_(shortcut_ ? shortcut_->forward(x_TCHW) : x_TCHW);
}

// ------------------------------------------------------------------ AttentionBlock

AttentionBlockImpl::AttentionBlockImpl(int64_t dim) : dim_(dim) {
  norm_ = register_module("norm", VaeRMSNorm(dim, /*images=*/true));
  to_qkv_ = register_module("to_qkv", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, 3 * dim, 1)));
  proj_ = register_module("proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim, 1)));
}

torch::Tensor AttentionBlockImpl::forward(const torch::Tensor& x_TCHW) {
  const int64_t T = x_TCHW.size(0), C = dim_, H = x_TCHW.size(2), W = x_TCHW.size(3);
  auto qkv_TLC = to_qkv_->forward(norm_->forward(x_TCHW))
                     .permute({0, 2, 3, 1})
                     .reshape({T, H * W, 3 * C});  // tokens = the pixels of one frame
  auto q = qkv_TLC.slice(2, 0, C), k = qkv_TLC.slice(2, C, 2 * C),
       v = qkv_TLC.slice(2, 2 * C, 3 * C);
  // Single head, softmax(q k^T / sqrt(C)) v (the reference's scaled_dot_product_attention).
  auto attn = torch::matmul(q, k.transpose(1, 2)).mul_(1.0 / std::sqrt(static_cast<double>(C)));
  auto o_TLC = torch::matmul(attn.softmax(-1), v);
  auto o_TCHW = o_TLC.view({T, H, W, C}).permute({0, 3, 1, 2});  // channels-last strides
  return proj_->forward(o_TCHW).add_(x_TCHW);
}

// ------------------------------------------------------------------ Resample

ResampleImpl::ResampleImpl(int64_t dim, ResampleMode mode) : mode_(mode) {
  const bool up = mode == ResampleMode::kUpsample2d || mode == ResampleMode::kUpsample3d;
  // resample = Sequential(Upsample | ZeroPad2d, Conv2d): only index 1 holds parameters.
  conv_ = up ? torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim / 2, 3).padding(1))
             : torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim, 3).stride(2));
  torch::nn::ModuleList resample;
  resample->push_back(torch::nn::Identity());
  resample->push_back(conv_);
  register_module("resample", resample);
  if (mode == ResampleMode::kUpsample3d)
    time_conv_ = register_module("time_conv", CausalConv3d(dim, 2 * dim, 3, 1, 1, 0));
  if (mode == ResampleMode::kDownsample3d)
    time_conv_ = register_module("time_conv", CausalConv3d(dim, dim, 3, 1, 0, 0));
}

torch::Tensor ResampleImpl::forward(const torch::Tensor& x_TCHW, CausalCache& cache) {
  torch::Tensor x = x_TCHW;
  if (mode_ == ResampleMode::kUpsample3d) {
    torch::Tensor& slot = cache.slot();
    if (!slot.defined()) {
      // First chunk: passes through without the time conv (the reference's 'Rep' marker);
      // later chunks see 2 zero frames of history, never this one.
      slot = torch::empty({0, x.size(1), x.size(2), x.size(3)}, x.options());
    } else {
      const int64_t T = x.size(0), C = x.size(1);
      auto y = time_conv_->forward(x, &slot);  // [T,2C,H,W]
      // reshape(b,2,c,t,h,w) + stack on time: frame 2j = channels [0,C), 2j+1 = [C,2C).
      auto out = torch::empty({2 * T, C, x.size(2), x.size(3)}, x.options().memory_format(kCL));
      out.slice(0, 0, 2 * T, 2).copy_(y.slice(1, 0, C));
      out.slice(0, 1, 2 * T, 2).copy_(y.slice(1, C, 2 * C));
      x = out;
    }
  }
  if (mode_ == ResampleMode::kUpsample2d || mode_ == ResampleMode::kUpsample3d) {
    // nearest-exact x2 = pixel duplication, then Conv2d 3x3 pad 1.
    x = torch::upsample_nearest2d(x, {2 * x.size(2), 2 * x.size(3)}).contiguous(kCL);
    return conv_->forward(x).contiguous(kCL);
  }
  // ZeroPad2d((0,1,0,1)) (right and bottom) then Conv2d 3x3 stride 2.
  x = conv_->forward(torch::constant_pad_nd(x, {0, 1, 0, 1}, 0).contiguous(kCL)).contiguous(kCL);
  if (mode_ == ResampleMode::kDownsample3d) {
    torch::Tensor& slot = cache.slot();
    const int64_t T = x.size(0);
    if (!slot.defined()) {  // first chunk: frame 0 passes, time conv not applied
      slot = x.slice(0, T - 1, T).clone();
      return x;
    }
    auto xin = torch::cat({slot, x}, 0);  // [last frame of the previous chunk, chunk]
    slot = x.slice(0, T - 1, T).clone();
    return time_conv_->forward_valid(xin, /*stride_t=*/2);
  }
  return x;
}

// ------------------------------------------------------------------ Encoder3d / Decoder3d

Encoder3dImpl::Encoder3dImpl(const WanVAEConfig& cfg) {
  std::vector<int64_t> dims = {cfg.dim};
  for (auto m : cfg.dim_mult) dims.push_back(cfg.dim * m);
  double scale = 1.0;
  auto has_attn = [&](double s) {
    for (double a : cfg.attn_scales)
      if (a == s) return true;
    return false;
  };
  conv1_ = register_module("conv1", CausalConv3d(3, dims[0], 3, 3, 1, 1));
  downsamples_ = register_module("downsamples", torch::nn::ModuleList());
  bool seen_temporal = false;
  for (size_t i = 0; i + 1 < dims.size(); ++i) {
    int64_t in = dims[i];
    const int64_t out = dims[i + 1];
    for (int64_t r = 0; r < cfg.num_res_blocks; ++r) {
      downsamples_->push_back(ResidualBlock(in, out, cfg.dropout));
      if (has_attn(scale)) downsamples_->push_back(AttentionBlock(out));
      in = out;
    }
    if (i + 1 != cfg.dim_mult.size()) {
      const bool t = cfg.temperal_downsample[i];
      if (t && !seen_temporal) {
        split_ = downsamples_->size();
        seen_temporal = true;
      }
      downsamples_->push_back(
          Resample(out, t ? ResampleMode::kDownsample3d : ResampleMode::kDownsample2d));
      scale /= 2.0;
    }
  }
  if (!seen_temporal) split_ = downsamples_->size();
  const int64_t c = dims.back();
  middle_ = register_module("middle", torch::nn::ModuleList());
  middle_->push_back(ResidualBlock(c, c, cfg.dropout));
  middle_->push_back(AttentionBlock(c));
  middle_->push_back(ResidualBlock(c, c, cfg.dropout));
  head_ = register_module("head", torch::nn::ModuleList());
  head_->push_back(VaeRMSNorm(c, /*images=*/false));
  head_->push_back(torch::nn::SiLU());
  head_->push_back(CausalConv3d(c, 2 * cfg.z_dim, 3, 3, 1, 1));
}

torch::Tensor Encoder3dImpl::forward(const torch::Tensor& x_TCHW, CausalCache& cache) {
  auto x = per_frame(x_TCHW, cache, [&](const torch::Tensor& f) {
    auto y = conv1_->forward(f, &cache.slot());
    for (size_t i = 0; i < split_; ++i) y = apply_layer(downsamples_[i], y, cache);
    return y;
  });
  for (size_t i = split_; i < downsamples_->size(); ++i) x = apply_layer(downsamples_[i], x, cache);
  for (const auto& m : *middle_) x = apply_layer(m, x, cache);
  x = silu_inplace(head_[0]->as<VaeRMSNormImpl>()->forward(x));
  return head_[2]->as<CausalConv3dImpl>()->forward(x, &cache.slot());
}

Decoder3dImpl::Decoder3dImpl(const WanVAEConfig& cfg) {
  const size_t L = cfg.dim_mult.size();
  std::vector<int64_t> dims = {cfg.dim * cfg.dim_mult.back()};
  for (size_t i = 0; i < L; ++i) dims.push_back(cfg.dim * cfg.dim_mult[L - 1 - i]);
  double scale = 1.0 / std::pow(2.0, static_cast<double>(L) - 2.0);
  auto has_attn = [&](double s) {
    for (double a : cfg.attn_scales)
      if (a == s) return true;
    return false;
  };
  conv1_ = register_module("conv1", CausalConv3d(cfg.z_dim, dims[0], 3, 3, 1, 1));
  middle_ = register_module("middle", torch::nn::ModuleList());
  middle_->push_back(ResidualBlock(dims[0], dims[0], cfg.dropout));
  middle_->push_back(AttentionBlock(dims[0]));
  middle_->push_back(ResidualBlock(dims[0], dims[0], cfg.dropout));
  upsamples_ = register_module("upsamples", torch::nn::ModuleList());
  for (size_t i = 0; i < L; ++i) {
    int64_t in = dims[i];
    const int64_t out = dims[i + 1];
    if (i == 1 || i == 2 || i == 3) in /= 2;  // an upsample Resample halved the channels
    for (int64_t r = 0; r < cfg.num_res_blocks + 1; ++r) {
      upsamples_->push_back(ResidualBlock(in, out, cfg.dropout));
      if (has_attn(scale)) upsamples_->push_back(AttentionBlock(out));
      in = out;
    }
    if (i + 1 != L) {
      // temperal_upsample = temperal_downsample reversed
      const bool t = cfg.temperal_downsample[L - 2 - i];
      upsamples_->push_back(
          Resample(out, t ? ResampleMode::kUpsample3d : ResampleMode::kUpsample2d));
      if (t) split_ = upsamples_->size();
      scale *= 2.0;
    }
  }
  head_ = register_module("head", torch::nn::ModuleList());
  head_->push_back(VaeRMSNorm(dims.back(), /*images=*/false));
  head_->push_back(torch::nn::SiLU());
  head_->push_back(CausalConv3d(dims.back(), 3, 3, 3, 1, 1));
}

torch::Tensor Decoder3dImpl::forward(const torch::Tensor& x_TCHW, CausalCache& cache) {
  auto x = conv1_->forward(x_TCHW, &cache.slot());
  for (const auto& m : *middle_) x = apply_layer(m, x, cache);
  for (size_t i = 0; i < split_; ++i) x = apply_layer(upsamples_[i], x, cache);
  return per_frame(x, cache, [&](const torch::Tensor& f) {
    auto y = f;
    for (size_t i = split_; i < upsamples_->size(); ++i) y = apply_layer(upsamples_[i], y, cache);
    y = silu_inplace(head_[0]->as<VaeRMSNormImpl>()->forward(y));
    return head_[2]->as<CausalConv3dImpl>()->forward(y, &cache.slot());
  });
}

// ------------------------------------------------------------------ WanVAE_

WanVAEImpl::WanVAEImpl(const WanVAEConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  encoder_ = register_module("encoder", Encoder3d(cfg_));
  conv1_ = register_module("conv1", CausalConv3d(2 * cfg_.z_dim, 2 * cfg_.z_dim, 1, 1, 0, 0));
  conv2_ = register_module("conv2", CausalConv3d(cfg_.z_dim, cfg_.z_dim, 1, 1, 0, 0));
  decoder_ = register_module("decoder", Decoder3d(cfg_));
}

void WanVAEImpl::check_video(const torch::Tensor& v, const char* what) const {
  const int64_t s = cfg_.spatial_stride();
  TORCH_CHECK(v.defined() && v.dim() == 5, what, ": got shape ",
              v.defined() ? shape_str(v) : "undefined", ", want 5 dims [B,3,T,H,W]");
  TORCH_CHECK(v.size(1) == 3, what, ": got ", v.size(1), " channels (shape ", shape_str(v),
              "), want 3 (RGB) in dim 1 of [B,3,T,H,W]");
  TORCH_CHECK(v.size(2) >= 1 && (v.size(2) - 1) % 4 == 0, what, ": got ", v.size(2),
              " frames, want 1+4k (the encoder takes frame 0 alone, then 4-frame chunks)");
  TORCH_CHECK(v.size(3) > 0 && v.size(4) > 0 && v.size(3) % s == 0 && v.size(4) % s == 0, what,
              ": got H x W = ", v.size(3), " x ", v.size(4), ", want multiples of ", s);
  TORCH_CHECK(v.is_floating_point(), what, ": got dtype ", v.scalar_type(), ", want a float");
}

void WanVAEImpl::check_latent(const torch::Tensor& z, const char* what) const {
  TORCH_CHECK(z.defined() && z.dim() == 5, what, ": got shape ",
              z.defined() ? shape_str(z) : "undefined", ", want 5 dims [B,z,T,h,w]");
  TORCH_CHECK(z.size(1) == cfg_.z_dim, what, ": got ", z.size(1), " latent channels (shape ",
              shape_str(z), "), want z_dim = ", cfg_.z_dim);
  TORCH_CHECK(z.size(2) >= 1 && z.size(3) > 0 && z.size(4) > 0, what, ": got shape ",
              shape_str(z), ", want at least 1 frame and non-empty h, w");
  TORCH_CHECK(z.is_floating_point(), what, ": got dtype ", z.scalar_type(), ", want a float");
}

torch::Tensor WanVAEImpl::encode_chunk(const torch::Tensor& x_TCHW, CausalCache& cache) {
  cache.begin_chunk();
  return conv1_->forward(encoder_->forward(x_TCHW.contiguous(kCL), cache));
}

torch::Tensor WanVAEImpl::decode_chunk(const torch::Tensor& z_TCHW, CausalCache& cache) {
  cache.begin_chunk();
  return decoder_->forward(conv2_->forward(z_TCHW.contiguous(kCL)), cache);
}

torch::Tensor WanVAEImpl::encode_moments(const torch::Tensor& video_BCTHW) {
  check_video(video_BCTHW, "WanVAE.encode: video");
  torch::NoGradGuard no_grad;
  const auto p = param_options();
  std::vector<torch::Tensor> items;
  for (int64_t b = 0; b < video_BCTHW.size(0); ++b) {
    auto x_TCHW = video_BCTHW[b].permute({1, 0, 2, 3}).to(p);
    CausalCache cache;
    std::vector<torch::Tensor> outs;
    // Chunks [0], [1..4], [5..8], ...
    for (int64_t s = 0; s < x_TCHW.size(0); s += (s == 0 ? 1 : 4))
      outs.push_back(encode_chunk(x_TCHW.slice(0, s, s == 0 ? 1 : s + 4), cache));
    items.push_back(torch::cat(outs, 0).permute({1, 0, 2, 3}));
  }
  return torch::stack(items, 0).contiguous();
}

torch::Tensor WanVAEImpl::encode(const torch::Tensor& video_BCTHW, const torch::Tensor& mean,
                                 const torch::Tensor& inv_std) {
  TORCH_CHECK(mean.numel() == cfg_.z_dim && inv_std.numel() == cfg_.z_dim,
              "WanVAE.encode: got mean/inv_std with ", mean.numel(), "/", inv_std.numel(),
              " entries, want z_dim = ", cfg_.z_dim);
  auto m = encode_moments(video_BCTHW);
  torch::NoGradGuard no_grad;
  auto mu = m.slice(1, 0, cfg_.z_dim);
  auto shape = std::vector<int64_t>{1, cfg_.z_dim, 1, 1, 1};
  return (mu - mean.to(mu.options()).view(shape)) * inv_std.to(mu.options()).view(shape);
}

torch::Tensor WanVAEImpl::decode_frames(const torch::Tensor& latent_TCHW,
                                        const torch::Tensor& mean, const torch::Tensor& inv_std,
                                        CausalCache& cache) {
  TORCH_CHECK(mean.numel() == cfg_.z_dim && inv_std.numel() == cfg_.z_dim,
              "WanVAE.decode: got mean/inv_std with ", mean.numel(), "/", inv_std.numel(),
              " entries, want z_dim = ", cfg_.z_dim);
  torch::NoGradGuard no_grad;
  const auto p = param_options();
  // z = latent / (1/std) + mean, as the reference (divide by the reciprocal).
  auto z_TCHW = latent_TCHW.to(p) / inv_std.to(p).view({cfg_.z_dim, 1, 1}) +
                mean.to(p).view({cfg_.z_dim, 1, 1});
  std::vector<torch::Tensor> outs;
  for (int64_t t = 0; t < z_TCHW.size(0); ++t)
    outs.push_back(decode_chunk(z_TCHW.slice(0, t, t + 1), cache));
  return torch::cat(outs, 0);
}

torch::Tensor WanVAEImpl::decode(const torch::Tensor& latent_BCTHW, const torch::Tensor& mean,
                                 const torch::Tensor& inv_std) {
  check_latent(latent_BCTHW, "WanVAE.decode: latent");
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> items;
  for (int64_t b = 0; b < latent_BCTHW.size(0); ++b) {
    CausalCache cache;
    auto x_TCHW = decode_frames(latent_BCTHW[b].permute({1, 0, 2, 3}), mean, inv_std, cache);
    items.push_back(x_TCHW.permute({1, 0, 2, 3}));
  }
  return torch::stack(items, 0).contiguous();
}

void load_wan_vae(WanVAE& vae, const core::TensorMap& sd, const std::string& source) {
  core::LoadOptions opt;
  opt.source = source;
  core::load_state_dict(*vae, sd, opt);
}

}  // namespace causvid::models
