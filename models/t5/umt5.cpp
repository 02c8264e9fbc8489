// models/t5/umt5.cpp: see umt5.h. Ports wan/modules/t5.py (encoder half) and
// causvid/models/wan/wan_wrapper.py WanTextEncoder.
#include "models/t5/umt5.h"
#include "models/t5/t5_layouts.h"

#include "core/tensor_io.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "core/log.h"
#include "core/state_dict.h"

namespace causvid::models {

// ------------------------------------------------------------------ config
UMT5Config UMT5Config::tiny(int64_t vocab) {
  UMT5Config c;
  c.vocab = vocab;
  c.dim = 32;
  c.dim_attn = 32;
  c.dim_ffn = 64;
  c.num_heads = 4;
  c.num_layers = 2;
  c.num_buckets = 32;
  return c;
}

UMT5Config UMT5Config::from_json(const nlohmann::json& j) {
  UMT5Config c;
  auto get = [&](const char* k, int64_t& v) {
    if (j.contains(k)) v = j.at(k).get<int64_t>();
  };
  get("vocab", c.vocab);
  get("dim", c.dim);
  get("dim_attn", c.dim_attn);
  get("dim_ffn", c.dim_ffn);
  get("num_heads", c.num_heads);
  get("num_layers", c.num_layers);
  get("num_buckets", c.num_buckets);
  get("max_dist", c.max_dist);
  if (j.contains("shared_pos")) c.shared_pos = j.at("shared_pos").get<bool>();
  if (j.contains("eps")) c.eps = j.at("eps").get<double>();
  c.validate();
  return c;
}

UMT5Config UMT5Config::infer(const core::TensorMap& sd, const std::string& source) {
  auto shape = [&](const std::string& k) {
    auto it = sd.find(k);
    TORCH_CHECK(it != sd.end(), source, ": missing key ", k, " (not a umT5 encoder state dict?)");
    return it->second.sizes().vec();
  };
  UMT5Config c;
  auto emb = shape("token_embedding.weight");
  TORCH_CHECK(emb.size() == 2, source, ": token_embedding.weight: got rank ", emb.size(),
              ", want 2");
  c.vocab = emb[0];
  c.dim = emb[1];
  c.dim_attn = shape("blocks.0.attn.q.weight").at(0);
  c.dim_ffn = shape("blocks.0.ffn.fc1.weight").at(0);
  c.num_layers = 0;
  while (sd.count("blocks." + std::to_string(c.num_layers) + ".norm1.weight")) ++c.num_layers;
  c.shared_pos = sd.count("pos_embedding.embedding.weight") > 0;
  auto pos = shape(c.shared_pos ? "pos_embedding.embedding.weight"
                                : "blocks.0.pos_embedding.embedding.weight");
  c.num_buckets = pos.at(0);
  c.num_heads = pos.at(1);
  c.validate();
  return c;
}

void UMT5Config::validate() const {
  TORCH_CHECK(vocab > 0 && dim > 0 && dim_ffn > 0 && num_layers > 0, "umt5 config: got ",
              str(), ", want positive sizes");
  TORCH_CHECK(num_heads > 0 && dim_attn % num_heads == 0, "umt5 config: dim_attn ", dim_attn,
              " must be divisible by num_heads ", num_heads);
  TORCH_CHECK(num_buckets >= 4 && num_buckets % 2 == 0, "umt5 config: num_buckets: got ",
              num_buckets, ", want an even number >= 4");
  TORCH_CHECK(max_dist > num_buckets / 4, "umt5 config: max_dist: got ", max_dist,
              ", want > num_buckets/4");
}

int64_t UMT5Config::num_params() const {
  int64_t per_layer = 2 * dim + 4 * dim * dim_attn + 3 * dim * dim_ffn +
                      (shared_pos ? 0 : num_buckets * num_heads);
  return vocab * dim + num_layers * per_layer + dim + (shared_pos ? num_buckets * num_heads : 0);
}

std::string UMT5Config::str() const {
  std::ostringstream os;
  os << "{vocab " << vocab << ", dim " << dim << ", dim_attn " << dim_attn << ", dim_ffn "
     << dim_ffn << ", heads " << num_heads << ", layers " << num_layers << ", buckets "
     << num_buckets << ", shared_pos " << shared_pos << "}";
  return os.str();
}

// ------------------------------------------------------------------ position buckets
torch::Tensor relative_position_bucket(int64_t lq, int64_t lk, int64_t num_buckets,
                                       bool bidirectional, int64_t max_dist) {
  // T5RelativeEmbedding._relative_position_bucket, rel = j - i.
  const int64_t nb = bidirectional ? num_buckets / 2 : num_buckets;
  const int64_t max_exact = nb / 2;
  // Bucket of a distance n >= 0 (computed once per distance, then looked up).
  const int64_t max_n = std::max(lq, lk);
  std::vector<int64_t> of_n(max_n + 1);
  for (int64_t n = 0; n <= max_n; ++n) {
    if (n < max_exact) {
      of_n[n] = n;
    } else {
      // max_exact + long(log(n / max_exact) / log(max_dist / max_exact) * (nb - max_exact));
      // float64 gives the reference's float32 thresholds (8..11->8, 12->9, 16->10, ...).
      double r = std::log(static_cast<double>(n) / max_exact) /
                 std::log(static_cast<double>(max_dist) / max_exact) * (nb - max_exact);
      of_n[n] = std::min<int64_t>(max_exact + static_cast<int64_t>(r), nb - 1);
    }
  }
  auto out = torch::empty({lq, lk}, torch::kInt64);
  auto a = out.accessor<int64_t, 2>();
  for (int64_t i = 0; i < lq; ++i) {
    for (int64_t j = 0; j < lk; ++j) {
      int64_t rel = j - i;
      if (bidirectional) {
        a[i][j] = (rel > 0 ? nb : 0) + of_n[std::abs(rel)];
      } else {
        a[i][j] = of_n[rel < 0 ? -rel : 0];
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------ modules
namespace {

// torch.finfo(dtype).min: what T5Attention writes into masked bias entries.
double lowest(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat64: return std::numeric_limits<double>::lowest();
    case torch::kBFloat16: return -3.3895313892515355e38;
    case torch::kFloat16: return -65504.0;
    default: return std::numeric_limits<float>::lowest();
  }
}

// fp16_clamp: only float16 can overflow in the residual stream.
torch::Tensor fp16_clamp(torch::Tensor x) {
  if (x.scalar_type() == torch::kFloat16 && torch::isinf(x).any().item<bool>()) {
    double c = 65504.0 - 1000.0;
    x = x.clamp(-c, c);
  }
  return x;
}

}  // namespace

T5LayerNormImpl::T5LayerNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor T5LayerNormImpl::forward(const torch::Tensor& x_BLC) {
  // x * rsqrt(mean(x^2) + eps), the statistics in float32; back to half weights' dtype.
  auto x = x_BLC * torch::rsqrt(x_BLC.to(torch::kFloat32).pow(2).mean(-1, true) + eps_);
  if (weight.scalar_type() == torch::kFloat16 || weight.scalar_type() == torch::kBFloat16)
    x = x.to(weight.scalar_type());
  return weight * x;
}

T5AttentionImpl::T5AttentionImpl(int64_t dim, int64_t dim_attn, int64_t num_heads)
    : num_heads_(num_heads), head_dim_(dim_attn / num_heads) {
  auto lin = [](int64_t i, int64_t o) { return torch::nn::LinearOptions(i, o).bias(false); };
  q = register_module("q", torch::nn::Linear(lin(dim, dim_attn)));
  k = register_module("k", torch::nn::Linear(lin(dim, dim_attn)));
  v = register_module("v", torch::nn::Linear(lin(dim, dim_attn)));
  o = register_module("o", torch::nn::Linear(lin(dim_attn, dim)));
}

torch::Tensor T5AttentionImpl::forward(const torch::Tensor& x_BLC,
                                       const torch::Tensor& bias_BHLL) {
  const int64_t b = x_BLC.size(0), l = x_BLC.size(1);
  // view(b, -1, n, c) then heads first: [B, H, L, K]
  auto q_BHLK = q->forward(x_BLC).view({b, l, num_heads_, head_dim_}).transpose(1, 2);
  auto k_BHLK = k->forward(x_BLC).view({b, l, num_heads_, head_dim_}).transpose(1, 2);
  auto v_BHLK = v->forward(x_BLC).view({b, l, num_heads_, head_dim_}).transpose(1, 2);
  // einsum('binc,bjnc->bnij') + bias; T5 does not scale by 1/sqrt(K).
  auto logits_BHLL = torch::matmul(q_BHLK, k_BHLK.transpose(-1, -2)) + bias_BHLL;
  auto attn_BHLL = torch::softmax(logits_BHLL.to(torch::kFloat32), -1).to(logits_BHLL.dtype());
  auto x_BHLK = torch::matmul(attn_BHLL, v_BHLK);
  return o->forward(x_BHLK.transpose(1, 2).reshape({b, l, num_heads_ * head_dim_}));
}

T5FeedForwardImpl::T5FeedForwardImpl(int64_t dim, int64_t dim_ffn) {
  auto lin = [](int64_t i, int64_t o) { return torch::nn::LinearOptions(i, o).bias(false); };
  gate = register_module("gate", torch::nn::Sequential(torch::nn::Linear(lin(dim, dim_ffn))));
  fc1 = register_module("fc1", torch::nn::Linear(lin(dim, dim_ffn)));
  fc2 = register_module("fc2", torch::nn::Linear(lin(dim_ffn, dim)));
}

torch::Tensor T5FeedForwardImpl::forward(const torch::Tensor& x_BLC) {
  // fc2(fc1(x) * GELU_tanh(gate.0(x))); the reference GELU is the tanh approximation.
  auto g_BLF = torch::gelu(gate->forward(x_BLC), "tanh");
  return fc2->forward(fc1->forward(x_BLC) * g_BLF);
}

T5RelativeEmbeddingImpl::T5RelativeEmbeddingImpl(int64_t num_buckets, int64_t num_heads,
                                                 bool bidirectional, int64_t max_dist)
    : num_buckets_(num_buckets), max_dist_(max_dist), bidirectional_(bidirectional) {
  embedding = register_module("embedding", torch::nn::Embedding(num_buckets, num_heads));
}

torch::Tensor T5RelativeEmbeddingImpl::forward(int64_t lq, int64_t lk) {
  return from_buckets(
      relative_position_bucket(lq, lk, num_buckets_, bidirectional_, max_dist_));
}

torch::Tensor T5RelativeEmbeddingImpl::from_buckets(const torch::Tensor& bucket_LL) {
  auto w = embedding->weight;
  auto e_LLH = w.index_select(0, bucket_LL.to(w.device()).reshape(-1))
                   .view({bucket_LL.size(0), bucket_LL.size(1), w.size(1)});
  return e_LLH.permute({2, 0, 1}).unsqueeze(0).contiguous();  // [1, H, Lq, Lk]
}

T5SelfAttentionImpl::T5SelfAttentionImpl(const UMT5Config& cfg) {
  norm1 = register_module("norm1", T5LayerNorm(cfg.dim, cfg.eps));
  attn = register_module("attn", T5Attention(cfg.dim, cfg.dim_attn, cfg.num_heads));
  norm2 = register_module("norm2", T5LayerNorm(cfg.dim, cfg.eps));
  ffn = register_module("ffn", T5FeedForward(cfg.dim, cfg.dim_ffn));
  if (!cfg.shared_pos)
    pos_embedding = register_module(
        "pos_embedding", T5RelativeEmbedding(cfg.num_buckets, cfg.num_heads, true, cfg.max_dist));
}

torch::Tensor T5SelfAttentionImpl::forward(const torch::Tensor& x_BLC,
                                           const torch::Tensor& pad_B11L,
                                           const torch::Tensor& pos_bias_1HLL,
                                           const torch::Tensor& bucket_LL) {
  auto e_1HLL = pos_embedding ? pos_embedding->from_buckets(bucket_LL) : pos_bias_1HLL;
  // attn_bias = zeros + pos_bias, then masked keys := finfo(dtype).min (replacing the bias).
  const int64_t b = x_BLC.size(0);
  auto bias_BHLL = e_1HLL.to(x_BLC.dtype())
                       .expand({b, e_1HLL.size(1), e_1HLL.size(2), e_1HLL.size(3)})
                       .masked_fill(pad_B11L, lowest(x_BLC.scalar_type()));
  auto x = fp16_clamp(x_BLC + attn->forward(norm1->forward(x_BLC), bias_BHLL));
  return fp16_clamp(x + ffn->forward(norm2->forward(x)));
}

UMT5EncoderImpl::UMT5EncoderImpl(const UMT5Config& cfg) : cfg_(cfg) {
  cfg.validate();
  token_embedding = register_module("token_embedding", torch::nn::Embedding(cfg.vocab, cfg.dim));
  if (cfg.shared_pos)
    pos_embedding = register_module(
        "pos_embedding", T5RelativeEmbedding(cfg.num_buckets, cfg.num_heads, true, cfg.max_dist));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_layers; ++i) blocks->push_back(T5SelfAttention(cfg));
  norm = register_module("norm", T5LayerNorm(cfg.dim, cfg.eps));
}

torch::Tensor UMT5EncoderImpl::forward(const torch::Tensor& ids_BL, const torch::Tensor& mask_BL) {
  TORCH_CHECK(ids_BL.dim() == 2, "umt5 ids: got shape ", ids_BL.sizes(), ", want [B, L]");
  TORCH_CHECK(mask_BL.sizes() == ids_BL.sizes(), "umt5 mask: got shape ", mask_BL.sizes(),
              ", want ", ids_BL.sizes());
  auto dev = token_embedding->weight.device();
  auto ids = ids_BL.to(dev, torch::kInt64);
  TORCH_CHECK(ids.numel() > 0, "umt5 ids: got an empty batch ", ids.sizes());
  {
    auto mn = ids.min().item<int64_t>(), mx = ids.max().item<int64_t>();
    TORCH_CHECK(mn >= 0 && mx < cfg_.vocab, "umt5 ids: got values in [", mn, ", ", mx,
                "], want [0, ", cfg_.vocab, ") (tokenizer and encoder vocab differ?)");
  }
  const int64_t b = ids.size(0), l = ids.size(1);
  auto pad_B11L = mask_BL.to(dev).eq(0).view({b, 1, 1, l});
  auto x_BLC = token_embedding->forward(ids);
  auto bucket_LL = relative_position_bucket(l, l, cfg_.num_buckets, true, cfg_.max_dist);
  torch::Tensor shared_1HLL;
  if (pos_embedding) shared_1HLL = pos_embedding->from_buckets(bucket_LL);
  for (const auto& blk : *blocks)
    x_BLC = blk->as<T5SelfAttention>()->forward(x_BLC, pad_B11L, shared_1HLL, bucket_LL);
  return norm->forward(x_BLC);
}

torch::Tensor zero_past_length(torch::Tensor context_BLC, const torch::Tensor& mask_BL) {
  // WanTextEncoder: seq_lens = mask.gt(0).sum(1); u[v:] = 0 for each row.
  auto lens = mask_BL.gt(0).sum(1).to(torch::kCPU);
  auto a = lens.accessor<int64_t, 1>();
  for (int64_t r = 0; r < context_BLC.size(0); ++r)
    if (a[r] < context_BLC.size(1)) context_BLC[r].narrow(0, a[r], context_BLC.size(1) - a[r]).zero_();
  return context_BLC;
}

// ------------------------------------------------------------------ loading
core::TensorMap read_umt5_weights(const std::string& path) {
  // .safetensors or torch.save archives (models_t5_umt5-xxl-enc-bf16.pth), by content; a
  // transformers folder (or a pipeline's text_encoder/) with its names converted.
  const std::string file = resolve_umt5_file(path);
  return umt5_to_ours(core::load_weights(file), file);
}

UMT5Encoder load_umt5_encoder(const core::TensorMap& sd, const std::string& source,
                              torch::ScalarType dtype, torch::Device device) {
  auto cfg = UMT5Config::infer(sd, source);
  LOG_INFO("umT5 encoder from %s: %s, %.2fB parameters", source, cfg.str(),
           cfg.num_params() / 1e9);
  UMT5Encoder enc(cfg);
  // Convert first, then copy (copy_ casts): XXL in bf16 never holds a second fp32 copy.
  enc->to(device, dtype);
  core::LoadOptions opt;
  opt.source = source;
  core::load_state_dict(*enc, sd, opt);
  enc->eval();
  for (auto& p : enc->parameters()) p.set_requires_grad(false);
  return enc;
}

// ------------------------------------------------------------------ WanTextEncoder
UMT5TextEncoder::UMT5TextEncoder(UMT5Encoder encoder, std::shared_ptr<UMT5Tokenizer> tokenizer,
                                 torch::ScalarType output_dtype, bool trim_padding)
    : encoder_(std::move(encoder)),
      tokenizer_(std::move(tokenizer)),
      output_dtype_(output_dtype),
      trim_padding_(trim_padding) {
  TORCH_CHECK(tokenizer_, "UMT5TextEncoder: null tokenizer");
  TORCH_CHECK(tokenizer_->vocab_size() <= encoder_->config().vocab, tokenizer_->model_path(),
              ": tokenizer has ", tokenizer_->vocab_size(), " pieces, the encoder only ",
              encoder_->config().vocab, " embeddings");
}

torch::Tensor UMT5TextEncoder::encode(const std::vector<std::string>& prompts) {
  return encode(prompts, nullptr);
}

torch::Tensor UMT5TextEncoder::encode(const std::vector<std::string>& prompts,
                                      std::vector<int64_t>* lengths) {
  torch::NoGradGuard no_grad;
  auto tok = (*tokenizer_)(prompts);
  if (lengths) *lengths = tok.lengths;
  const int64_t full = tok.ids.size(1);
  int64_t l = full;
  if (trim_padding_ && !tok.lengths.empty())
    l = *std::max_element(tok.lengths.begin(), tok.lengths.end());
  auto mask_BL = tok.mask.narrow(1, 0, l);
  auto ctx_BLC = zero_past_length(encoder_->forward(tok.ids.narrow(1, 0, l), mask_BL), mask_BL);
  if (l < full)  // pad back to text_len with zero rows
    ctx_BLC = torch::constant_pad_nd(ctx_BLC, {0, 0, 0, full - l}, 0);
  return ctx_BLC.to(output_dtype_);
}

}  // namespace causvid::models
