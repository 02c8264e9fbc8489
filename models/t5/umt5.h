// models/t5/umt5.h: the umT5-XXL text encoder of Wan2.1 and CausVid's WanTextEncoder.
// Ports wan/modules/t5.py (T5LayerNorm, T5Attention, T5FeedForward, T5SelfAttention,
// T5RelativeEmbedding, T5Encoder, umt5_xxl(encoder_only=True)) and
// causvid/models/wan/wan_wrapper.py WanTextEncoder.forward (tokenize, encode, zero the
// positions past each prompt's length).
//
// Registered names equal the reference attribute names, so named_parameters() gives the keys
// of models_t5_umt5-xxl-enc-bf16.pth: token_embedding.weight, blocks.{i}.norm1.weight,
// blocks.{i}.attn.{q,k,v,o}.weight, blocks.{i}.norm2.weight, blocks.{i}.ffn.gate.0.weight,
// blocks.{i}.ffn.fc{1,2}.weight, blocks.{i}.pos_embedding.embedding.weight, norm.weight.
//
// umT5 details (vs T5): every layer owns its relative position table (shared_pos=false);
// attention has NO 1/sqrt(d) scale; gated GELU (tanh form) FFN; RMS "T5LayerNorm"
// without mean subtraction or bias. Dropout is omitted (inference only).
//
// Shape legend: B batch, L tokens, H heads, K head dim, C model dim, F ffn dim.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "models/t5/text_conditioner.h"
#include "models/t5/tokenizer.h"

namespace causvid::models {

struct UMT5Config {
  int64_t vocab = 256384;
  int64_t dim = 4096;
  int64_t dim_attn = 4096;
  int64_t dim_ffn = 10240;
  int64_t num_heads = 64;
  int64_t num_layers = 24;
  int64_t num_buckets = 32;
  bool shared_pos = false;  // umT5: false (one table per layer)
  int64_t max_dist = 128;
  double eps = 1e-6;

  static UMT5Config xxl() { return {}; }
  // A few-KB encoder for tests and `embed-prompts --preset tiny`.
  static UMT5Config tiny(int64_t vocab);
  // The fixture meta "config" object (keys as the reference constructor's arguments).
  static UMT5Config from_json(const nlohmann::json& j);
  // Sizes read off a state dict (vocab, dim, dim_attn, dim_ffn, num_heads, num_layers,
  // num_buckets, shared_pos); max_dist and eps keep their defaults.
  static UMT5Config infer(const core::TensorMap& sd, const std::string& source);
  void validate() const;
  int64_t num_params() const;
  std::string str() const;
};

// T5 bidirectional/unidirectional relative position bucket of (key - query) for every
// [query i, key j]; int64 [lq, lk]. Uses the integer thresholds of the reference's float32
// log formula (identical for all distances, since buckets saturate at distance >= 91).
torch::Tensor relative_position_bucket(int64_t lq, int64_t lk, int64_t num_buckets,
                                       bool bidirectional, int64_t max_dist = 128);

class T5LayerNormImpl : public torch::nn::Module {
 public:
  T5LayerNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x_BLC);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(T5LayerNorm);

class T5AttentionImpl : public torch::nn::Module {
 public:
  T5AttentionImpl(int64_t dim, int64_t dim_attn, int64_t num_heads);
  // bias_BHLL: position bias with masked keys already set to the dtype's lowest value.
  torch::Tensor forward(const torch::Tensor& x_BLC, const torch::Tensor& bias_BHLL);
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};

 private:
  int64_t num_heads_, head_dim_;
};
TORCH_MODULE(T5Attention);

class T5FeedForwardImpl : public torch::nn::Module {
 public:
  T5FeedForwardImpl(int64_t dim, int64_t dim_ffn);
  torch::Tensor forward(const torch::Tensor& x_BLC);
  torch::nn::Sequential gate{nullptr};  // gate.0 = Linear; the GELU has no parameters
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(T5FeedForward);

class T5RelativeEmbeddingImpl : public torch::nn::Module {
 public:
  T5RelativeEmbeddingImpl(int64_t num_buckets, int64_t num_heads, bool bidirectional,
                          int64_t max_dist);
  // [1, H, lq, lk]
  torch::Tensor forward(int64_t lq, int64_t lk);
  // Same, from a precomputed bucket table (forward computes it once for all layers).
  torch::Tensor from_buckets(const torch::Tensor& bucket_LL);
  torch::nn::Embedding embedding{nullptr};

 private:
  int64_t num_buckets_, max_dist_;
  bool bidirectional_;
};
TORCH_MODULE(T5RelativeEmbedding);

class T5SelfAttentionImpl : public torch::nn::Module {
 public:
  explicit T5SelfAttentionImpl(const UMT5Config& cfg);
  // mask_B11L: true where the key is padding. pos_bias_1HLL: shared table (shared_pos) or
  // undefined; bucket_LL: bucket table for this layer's own embedding.
  torch::Tensor forward(const torch::Tensor& x_BLC, const torch::Tensor& pad_B11L,
                        const torch::Tensor& pos_bias_1HLL, const torch::Tensor& bucket_LL);
  T5LayerNorm norm1{nullptr}, norm2{nullptr};
  T5Attention attn{nullptr};
  T5FeedForward ffn{nullptr};
  T5RelativeEmbedding pos_embedding{nullptr};  // null when shared_pos
};
TORCH_MODULE(T5SelfAttention);

class UMT5EncoderImpl : public torch::nn::Module {
 public:
  explicit UMT5EncoderImpl(const UMT5Config& cfg);
  // ids_BL int64, mask_BL (1 valid, 0 pad; any integer/bool dtype) -> [B, L, dim] in the
  // parameters' dtype. This is T5Encoder.forward: pad rows are NOT zeroed here.
  torch::Tensor forward(const torch::Tensor& ids_BL, const torch::Tensor& mask_BL);
  const UMT5Config& config() const { return cfg_; }

  torch::nn::Embedding token_embedding{nullptr};
  T5RelativeEmbedding pos_embedding{nullptr};  // only when shared_pos
  torch::nn::ModuleList blocks{nullptr};
  T5LayerNorm norm{nullptr};

 private:
  UMT5Config cfg_;
};
TORCH_MODULE(UMT5Encoder);

// WanTextEncoder's zeroing: rows >= lengths[b] of context_BLC set to 0 (in place, returned).
torch::Tensor zero_past_length(torch::Tensor context_BLC, const torch::Tensor& mask_BL);

// Reads an encoder state dict in our names: Wan2.1's models_t5_umt5-xxl-enc-bf16.pth, a
// .safetensors, or transformers' UMT5EncoderModel folder / a pipeline's (t5_layouts.h).
core::TensorMap read_umt5_weights(const std::string& path);

// Builds an encoder whose config is inferred from the weights, loads them strictly and
// converts to dtype/device. Frozen (requires_grad false), eval mode.
UMT5Encoder load_umt5_encoder(const core::TensorMap& sd, const std::string& source,
                              torch::ScalarType dtype = torch::kFloat32,
                              torch::Device device = torch::kCPU);

// CausVid's WanTextEncoder: tokenizer (text_len 512) + encoder + zeroing past each length.
class UMT5TextEncoder : public TextConditioner {
 public:
  // trim_padding: run the encoder on the batch's longest prompt only (positions past it are
  // zero in the output anyway, and valid rows never see pad keys: they are masked to
  // finfo.min, so their softmax weight is exactly 0). Same values up to float summation
  // order; about text_len / length times less work. false = the reference's full 512.
  UMT5TextEncoder(UMT5Encoder encoder, std::shared_ptr<UMT5Tokenizer> tokenizer,
                  torch::ScalarType output_dtype = torch::kFloat32, bool trim_padding = true);
  torch::Tensor encode(const std::vector<std::string>& prompts) override;
  // Same, also returning the valid lengths (what the prompt cache stores).
  torch::Tensor encode(const std::vector<std::string>& prompts, std::vector<int64_t>* lengths);
  int64_t text_len() const override { return tokenizer_->seq_len(); }
  int64_t dim() const override { return encoder_->config().dim; }
  torch::ScalarType output_dtype() const override { return output_dtype_; }
  UMT5Encoder& encoder() { return encoder_; }
  const UMT5Tokenizer& tokenizer() const { return *tokenizer_; }
  std::shared_ptr<torch::nn::Module> weights() override { return encoder_.ptr(); }

 private:
  UMT5Encoder encoder_;
  std::shared_ptr<UMT5Tokenizer> tokenizer_;
  torch::ScalarType output_dtype_;
  bool trim_padding_;
};

}  // namespace causvid::models
