// models/vae/wan_vae.h: the Wan2.1 causal 3D video VAE.
//
// Ports Wan-Video/Wan2.1 wan/modules/vae.py (= CausVid's vendored
// causvid/models/wan/wan_base/modules/vae.py): WanVAE_, Encoder3d, Decoder3d, ResidualBlock,
// AttentionBlock, Resample, CausalConv3d, RMS_norm; and the latent normalisation of CausVid's
// WanVAEWrapper (causvid/models/wan/wan_wrapper.py) with Wan2.1's 16 mean/std constants.
//
// Registered module names equal the reference's, so named_parameters() gives the keys of
// Wan2.1_VAE.pth (encoder.downsamples.0.residual.0.gamma, decoder.upsamples.3.time_conv.weight..).
//
// Layout legend: B batch, C channels, T frames, H/W height/width; latents have z channels.
//   WanVAE (the module, = WanVAE_):  pixels [B,3,T,H,W] <-> latents [B,z,T',H/8,W/8]
//   WanVAEWrapper (= CausVid wrapper): encode_to_latent: pixels [B,3,F,H,W] -> latents
//                                      [B,F',z,H/8,W/8]; decode_to_pixel: latents [B,F',z,h,w]
//                                      -> pixels [B,F,3,8h,8w] in [-1,1]
//   with F = 1 + 4 (F' - 1). Internally every batch item is processed alone, frames-major
//   ([T,C,H,W], "x_TCHW"), so per-frame 2D ops (resample, attention) need no permutes.
//
// Chunking ("feature cache"): as the reference, encode runs the encoder on frame 0 alone and
// then on 4-frame chunks; decode runs the decoder on one latent frame at a time. The causal
// state between chunks lives in a CausalCache (one slot per temporal op, in call order):
//   - 3-tap CausalConv3d: the last 2 frames of its own input (zeros at the start), so it is
//     exactly a whole-sequence causal conv with 2 leading zero frames;
//   - downsample3d: the last frame of its input; frame 0 passes without the time conv;
//   - upsample3d: unset before the first chunk (which passes through alone, the reference's
//     'Rep' marker), then a zero-initialised 2-frame causal cache (frame 0 is never seen).
// Deliberate differences: the 3x3x3 convs are computed as a sum of three per-frame 2D convs
// (one per time tap) on the frames-major layout (oneDNN conv2d, channels-last) instead of a
// conv3d over [B,C,T,H,W]; the results agree to float rounding. Batch items are decoded one
// after another (the reference wrapper also loops over the batch). Inside a chunk, the layers
// before the encoder's first downsample3d and after the decoder's last upsample3d run one
// frame at a time (exact: those layers are per-frame or causal), which bounds the full-res
// working set to one frame.
//
// Memory (causvid bench vae, real dims, fp32, 480x832, peak RSS of a child process): decode
// 5.4 GiB in all = 0.6 weights + 3.5 causal cache + ~1.2 working; encode 3.6 GiB (2.1 cache).
// bf16 halves both. The cache (the last 2 input frames of every 3-tap conv, most of it at
// full resolution) is inherent to causal chunked decoding; no spatial tiling is done.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace causvid::models {

// WanVAE_ constructor arguments. Defaults: the Wan2.1 VAE (Wan2.1_VAE.pth): spatial stride 8,
// temporal stride 4 (81 frames -> 21 latent frames, 480x832 -> 60x104).
struct WanVAEConfig {
  int64_t dim = 96;
  int64_t z_dim = 16;
  std::vector<int64_t> dim_mult = {1, 2, 4, 4};
  int64_t num_res_blocks = 2;
  std::vector<double> attn_scales = {};
  std::vector<bool> temperal_downsample = {false, true, true};  // reference spelling
  double dropout = 0.0;                                        // inference: no-op

  // Throws naming the field when a value is unusable.
  void validate() const;
  // From a fixture's meta.json "config" (same field names); missing fields keep defaults.
  static WanVAEConfig from_json(const nlohmann::json& j);
  // Temporal / spatial compression (4 and 8 for the real config).
  int64_t temporal_stride() const;
  int64_t spatial_stride() const;
};

// Wan2.1's per-channel latent statistics (wan/modules/vae.py WanVAE.__init__), z_dim 16.
const std::vector<float>& wan21_latent_mean();
const std::vector<float>& wan21_latent_std();

// Causal state of one batch item across chunks (the reference's feat_cache / feat_idx).
struct CausalCache {
  std::vector<torch::Tensor> slots;
  size_t next = 0;
  // The next slot in call order (created undefined on the first chunk).
  torch::Tensor& slot() {
    if (next == slots.size()) slots.emplace_back();
    return slots[next++];
  }
  void begin_chunk() { next = 0; }
  void clear() {
    slots.clear();
    next = 0;
  }
  int64_t bytes() const;
};

// ------------------------------------------------------------------ building blocks

// RMS_norm over the channel dim: x / max(||x||_2, 1e-12) * sqrt(C) * gamma (no bias).
// gamma has the reference shape: [C,1,1,1] (images=false) or [C,1,1] (images=true).
class VaeRMSNormImpl : public torch::nn::Module {
 public:
  VaeRMSNormImpl(int64_t dim, bool images);
  torch::Tensor forward(const torch::Tensor& x_TCHW);
  torch::Tensor gamma;

 private:
  int64_t dim_;
};
TORCH_MODULE(VaeRMSNorm);

// CausalConv3d: weight [Cout,Cin,kt,k,k], bias [Cout]; spatial padding pad_hw on both sides;
// in time 2*pad_t zero (or cached) frames before and none after.
class CausalConv3dImpl : public torch::nn::Module {
 public:
  CausalConv3dImpl(int64_t in, int64_t out, int64_t kt, int64_t k, int64_t pad_t, int64_t pad_hw);
  // Causal forward with the cache slot (for pad_t > 0): input [T,Cin,H,W] -> [T,Cout,H,W].
  torch::Tensor forward(const torch::Tensor& x_TCHW, torch::Tensor* cache = nullptr);
  // Valid (unpadded) temporal conv with time stride `stride_t` over already assembled frames.
  torch::Tensor forward_valid(const torch::Tensor& x_TCHW, int64_t stride_t = 1);
  torch::Tensor weight, bias;

 private:
  int64_t kt_, pad_t_, pad_hw_;
};
TORCH_MODULE(CausalConv3d);

class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t in, int64_t out, double dropout);
  torch::Tensor forward(const torch::Tensor& x_TCHW, CausalCache& cache);

 private:
  VaeRMSNorm norm0_{nullptr}, norm3_{nullptr};
  CausalConv3d conv2_{nullptr}, conv6_{nullptr}, shortcut_{nullptr};
};
TORCH_MODULE(ResidualBlock);

// Single-head attention over the h*w pixels of each frame (no time mixing).
class AttentionBlockImpl : public torch::nn::Module {
 public:
  explicit AttentionBlockImpl(int64_t dim);
  torch::Tensor forward(const torch::Tensor& x_TCHW);

 private:
  int64_t dim_;
  VaeRMSNorm norm_{nullptr};
  torch::nn::Conv2d to_qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(AttentionBlock);

enum class ResampleMode { kUpsample2d, kUpsample3d, kDownsample2d, kDownsample3d };

class ResampleImpl : public torch::nn::Module {
 public:
  ResampleImpl(int64_t dim, ResampleMode mode);
  torch::Tensor forward(const torch::Tensor& x_TCHW, CausalCache& cache);

 private:
  ResampleMode mode_;
  torch::nn::Conv2d conv_{nullptr};          // resample.1
  CausalConv3d time_conv_{nullptr};          // *3d modes only
};
TORCH_MODULE(Resample);

class Encoder3dImpl : public torch::nn::Module {
 public:
  explicit Encoder3dImpl(const WanVAEConfig& cfg);  // output 2*z_dim channels
  torch::Tensor forward(const torch::Tensor& x_TCHW, CausalCache& cache);

 private:
  CausalConv3d conv1_{nullptr};
  torch::nn::ModuleList downsamples_, middle_, head_;
  // conv1 and downsamples [0, split_) (everything before the first downsample3d) run one
  // frame at a time: exact (they are per-frame or 3-tap causal) and 4x less activation memory.
  size_t split_ = 0;
};
TORCH_MODULE(Encoder3d);

class Decoder3dImpl : public torch::nn::Module {
 public:
  explicit Decoder3dImpl(const WanVAEConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x_TCHW, CausalCache& cache);

 private:
  CausalConv3d conv1_{nullptr};
  torch::nn::ModuleList middle_, upsamples_, head_;
  // upsamples [split_, end) and the head (everything after the last upsample3d) run one frame
  // at a time, for the same reason as Encoder3d::split_.
  size_t split_ = 0;
};
TORCH_MODULE(Decoder3d);

// ------------------------------------------------------------------ WanVAE_

class WanVAEImpl : public torch::nn::Module {
 public:
  explicit WanVAEImpl(const WanVAEConfig& cfg = {});
  const WanVAEConfig& config() const { return cfg_; }

  // WanVAE_.encode(video, [mean, inv_std]): video [B,3,T,H,W] (T = 1+4k, H and W multiples of
  // 8) -> normalised mu (mu - mean) * inv_std, [B,z,1+k,H/8,W/8]. mean/inv_std: [z].
  torch::Tensor encode(const torch::Tensor& video_BCTHW, const torch::Tensor& mean,
                       const torch::Tensor& inv_std);
  // conv1(encoder(video)) unnormalised: [B,2z,T',h,w] (mu = first z channels, log_var = rest).
  torch::Tensor encode_moments(const torch::Tensor& video_BCTHW);
  // WanVAE_.decode(latent, [mean, inv_std]): latent [B,z,T',h,w] -> raw pixels (not clamped)
  // [B,3,1+4(T'-1),8h,8w]; z = latent / inv_std + mean as the reference.
  torch::Tensor decode(const torch::Tensor& latent_BCTHW, const torch::Tensor& mean,
                       const torch::Tensor& inv_std);

  // Decodes the normalised latent frames [t,z,h,w] of one batch item, one latent frame per
  // chunk through `cache` (a fresh cache starts a video, a used one continues it) -> raw pixel
  // frames [t_out,3,8h,8w]. decode() and WanVAEStreamDecoder both run this.
  torch::Tensor decode_frames(const torch::Tensor& latent_TCHW, const torch::Tensor& mean,
                              const torch::Tensor& inv_std, CausalCache& cache);
  // One decoder chunk: the un-normalised latent frames z_TCHW [t,z,h,w] of one batch item
  // (conv2 is applied here) with its cache -> pixel frames [t_out,3,8h,8w], raw. Chunks of
  // one latent frame reproduce the reference; the first chunk must start at frame 0.
  torch::Tensor decode_chunk(const torch::Tensor& z_TCHW, CausalCache& cache);
  // One encoder chunk of one batch item: frames [t,3,H,W] (t = 1 for the first chunk, then 4)
  // -> conv1 moments [t',2z,h,w].
  torch::Tensor encode_chunk(const torch::Tensor& x_TCHW, CausalCache& cache);

  // Checks shapes/dims, throwing "<what>: got .., want ..".
  void check_video(const torch::Tensor& video_BCTHW, const char* what) const;
  void check_latent(const torch::Tensor& latent_BCTHW, const char* what) const;

 private:
  torch::TensorOptions param_options() const { return conv2_->weight.options(); }
  WanVAEConfig cfg_;
  Encoder3d encoder_{nullptr};
  CausalConv3d conv1_{nullptr}, conv2_{nullptr};
  Decoder3d decoder_{nullptr};
};
TORCH_MODULE(WanVAE);

// Strict load of a WanVAE_ state dict (Wan2.1_VAE.pth keys); a wrong-shaped tensor raises one
// error naming every mismatched key with the file and model shapes. `source` names the file.
void load_wan_vae(WanVAE& vae, const core::TensorMap& sd, const std::string& source);

// ------------------------------------------------------------------ wrapper + streaming

class WanVAEStreamDecoder;

// CausVid's WanVAEWrapper: the module plus latent mean/std (defaults: Wan2.1's constants,
// which need z_dim 16). All entry points run under NoGradGuard; inputs are cast to the
// module's parameter dtype and outputs are float32 (the reference's .float()).
class WanVAEWrapper {
 public:
  explicit WanVAEWrapper(const WanVAEConfig& cfg = {});
  WanVAEWrapper(const WanVAEConfig& cfg, torch::Tensor mean, torch::Tensor std);

  WanVAE& model() { return model_; }
  const torch::Tensor& mean() const { return mean_; }
  const torch::Tensor& std() const { return std_; }
  // Moves the module (and the statistics) to device/dtype.
  void to(torch::Device device, torch::ScalarType dtype);
  // Strict load of a WanVAE_ state dict (Wan2.1_VAE.pth keys); `source` names it in errors.
  void load(const core::TensorMap& sd, const std::string& source);
  // A .safetensors file with those keys. (Wan2.1_VAE.pth itself: read it with the torch.save
  // reader, core::load_weights, and pass the map to load().)
  void load_file(const std::string& path);

  // pixels [B,3,F,H,W] in [-1,1], F = 1+4k -> normalised latents [B,1+k,z,H/8,W/8].
  torch::Tensor encode_to_latent(const torch::Tensor& pixel_BCFHW);
  // normalised latents [B,F',z,h,w] -> pixels [B,1+4(F'-1),3,8h,8w] clamped to [-1,1].
  torch::Tensor decode_to_pixel(const torch::Tensor& latent_BFCHW);

  WanVAEStreamDecoder stream_decoder();

 private:
  friend class WanVAEStreamDecoder;
  WanVAE model_{nullptr};
  torch::Tensor mean_, std_;
};

// Streaming decode for causal inference: push latent blocks (e.g. 3 latent frames at a time)
// and get their pixel frames at once. The concatenated outputs equal decode_to_pixel of the
// whole latent video bitwise (both decode one latent frame per chunk through the same cache).
// The first block yields 1 + 4 (f - 1) frames, later blocks 4 f. Holds a pointer to the
// wrapper, which must outlive it; the cache is ~3.5 GiB at 480x832 fp32 (see above).
class WanVAEStreamDecoder {
 public:
  explicit WanVAEStreamDecoder(WanVAEWrapper& vae);
  // latent_BFCHW [B,f,z,h,w] (normalised) -> pixels [B,f_out,3,8h,8w] clamped to [-1,1].
  torch::Tensor push(const torch::Tensor& latent_BFCHW) {
    return push_impl(latent_BFCHW, "WanVAEStreamDecoder.push: latent");
  }
  void reset();
  int64_t latent_frames_seen() const { return frames_; }
  int64_t cache_bytes() const;

 private:
  friend class WanVAEWrapper;
  torch::Tensor push_impl(const torch::Tensor& latent_BFCHW, const char* what);
  WanVAEWrapper* vae_;
  std::vector<CausalCache> caches_;  // one per batch item
  int64_t frames_ = 0, batch_ = -1, h_ = -1, w_ = -1;
};

}  // namespace causvid::models
