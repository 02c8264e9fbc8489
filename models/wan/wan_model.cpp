// models/wan/wan_model.cpp: see wan_model.h.
#include "models/wan/wan_model.h"

#include <tuple>

#include <cmath>

#include "models/common/attention.h"
#include "models/common/checkpoint.h"
#include "models/common/rope.h"

namespace causvid::models {
namespace F = torch::nn::functional;

SequentialLinearsImpl::SequentialLinearsImpl(std::vector<int> indices,
                                             std::vector<std::pair<int64_t, int64_t>> dims) {
  for (size_t i = 0; i < indices.size(); ++i) {
    layers_.emplace(indices[i], register_module(std::to_string(indices[i]),
                                                torch::nn::Linear(dims[i].first, dims[i].second)));
  }
}

torch::nn::Linear SequentialLinearsImpl::at(int index) const { return layers_.at(index); }

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  // WanRMSNorm: self._norm(x.float()).type_as(x) * self.weight
  auto xf = x.to(torch::kFloat32);
  auto y = xf * torch::rsqrt(xf.pow(2).mean(-1, true).add_(eps_));
  return y.to(x.scalar_type()) * weight;
}

WanAttentionImpl::WanAttentionImpl(int64_t dim, int64_t heads, bool qk_norm, double eps)
    : num_heads(heads), head_dim(dim / heads) {
  q = register_module("q", torch::nn::Linear(dim, dim));
  k = register_module("k", torch::nn::Linear(dim, dim));
  v = register_module("v", torch::nn::Linear(dim, dim));
  o = register_module("o", torch::nn::Linear(dim, dim));
  TORCH_CHECK(qk_norm, "qk_norm: only true (Wan2.1) is supported");
  norm_q = register_module("norm_q", RMSNorm(dim, eps));
  norm_k = register_module("norm_k", RMSNorm(dim, eps));
}

HeadImpl::HeadImpl(int64_t dim, int64_t out_features) {
  modulation = register_parameter("modulation", torch::randn({1, 2, dim}) / std::sqrt(double(dim)));
  head = register_module("head", torch::nn::Linear(dim, out_features));
}

namespace {

using LinearDims = std::vector<std::pair<int64_t, int64_t>>;
SequentialLinears linears(std::vector<int> indices, LinearDims dims) {
  return SequentialLinears(std::make_shared<SequentialLinearsImpl>(indices, dims));
}

// LN(x) (no affine) modulated per frame: LN(x)*(1+scale)+shift, with x_BLD viewed as
// [B,F',L/F',D] and shift/scale [B,F',1,D] (float32, like the reference's autocast region).
torch::Tensor modulate(const torch::Tensor& x_BLD, const torch::Tensor& shift,
                       const torch::Tensor& scale1p, double eps) {
  const int64_t B = x_BLD.size(0), L = x_BLD.size(1), D = x_BLD.size(2), Fm = shift.size(1);
  auto ln = torch::layer_norm(x_BLD.to(torch::kFloat32), {D}, {}, {}, eps);
  auto y = torch::addcmul(shift, ln.view({B, Fm, L / Fm, D}), scale1p);
  return y.view({B, L, D}).to(x_BLD.scalar_type());
}

// x + y * gate, per frame.
torch::Tensor gated_add(const torch::Tensor& x_BLD, const torch::Tensor& y_BLD,
                        const torch::Tensor& gate) {
  const int64_t B = x_BLD.size(0), L = x_BLD.size(1), D = x_BLD.size(2), Fm = gate.size(1);
  auto out = torch::addcmul(x_BLD.view({B, Fm, L / Fm, D}).to(torch::kFloat32),
                            y_BLD.view({B, Fm, L / Fm, D}).to(torch::kFloat32), gate);
  return out.view({B, L, D}).to(x_BLD.scalar_type());
}

// Block i through an owner's BlockRunner (FSDP gathers its parameters around fn): everything
// that reads block i's parameters runs inside fn, the cross-attention K/V (unless cached) and
// the block itself. Returns the block's output tokens; fills `xcache` when it is not valid.
torch::Tensor run_block_with_runner(const BlockRunner& runner,
                                    WanAttentionBlockImpl* block, size_t i,
                                    const torch::Tensor& tokens, const torch::Tensor& e0,
                                    const torch::Tensor& ctx, const RopeTable& rope,
                                    const AttnSpec& spec, CrossAttnCache* xcache) {
  const bool cached = xcache && xcache->valid;
  const bool fill = xcache && !xcache->valid;
  const int64_t layer = int64_t(i);
  std::vector<torch::Tensor> in = {tokens, e0};
  if (cached) {
    in.push_back(xcache->k[i]);
    in.push_back(xcache->v[i]);
  } else {
    in.push_back(ctx);
  }
  BlockFn fn = [block, rope, spec, layer, cached, fill](const std::vector<torch::Tensor>& a) {
    if (cached)
      return std::vector<torch::Tensor>{
          block->forward(a[0], a[1], a[2], a[3], rope, spec, layer)};
    auto kv = block->cross_kv(a[2], layer, spec.lora);
    auto y = block->forward(a[0], a[1], kv.first, kv.second, rope, spec, layer);
    if (fill) return std::vector<torch::Tensor>{y, kv.first, kv.second};
    return std::vector<torch::Tensor>{y};
  };
  auto out = runner(layer, fn, in);
  TORCH_CHECK(out.size() == (fill ? 3u : 1u), "block runner: block ", i, " returned ",
              out.size(), " outputs, want ", fill ? 3 : 1);
  if (fill) {
    xcache->k.push_back(out[1]);
    xcache->v.push_back(out[2]);
  }
  return out[0];
}

// Block i's cross-attention K/V: from the cache when valid, else computed from the embedded
// context (and appended to the cache when there is one).
std::pair<torch::Tensor, torch::Tensor> cross_kv_cached(WanAttentionBlockImpl* block, size_t i,
                                                        const torch::Tensor& ctx,
                                                        CrossAttnCache* xcache,
                                                        const LoraAdaptersImpl* lora) {
  if (xcache && xcache->valid) return {xcache->k[i], xcache->v[i]};
  auto kv = block->cross_kv(ctx, int64_t(i), lora);
  if (xcache) {
    xcache->k.push_back(kv.first);
    xcache->v.push_back(kv.second);
  }
  return kv;
}

}  // namespace

WanAttentionBlockImpl::WanAttentionBlockImpl(const WanConfig& cfg) : cfg_(cfg) {
  const int64_t D = cfg.dim;
  modulation = register_parameter("modulation", torch::randn({1, 6, D}) / std::sqrt(double(D)));
  self_attn = register_module("self_attn", WanAttention(D, cfg.num_heads, cfg.qk_norm, cfg.eps));
  if (cfg.cross_attn_norm) {
    norm3 = register_module(
        "norm3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(cfg.eps)));
  }
  cross_attn =
      register_module("cross_attn", WanAttention(D, cfg.num_heads, cfg.qk_norm, cfg.eps));
  ffn = register_module("ffn", linears(std::vector<int>{0, 2}, LinearDims{{D, cfg.ffn_dim}, {cfg.ffn_dim, D}}));
}

std::pair<torch::Tensor, torch::Tensor> WanAttentionBlockImpl::cross_kv(
    const torch::Tensor& ctx_BTD, int64_t layer, const LoraAdaptersImpl* lora) {
  const int64_t B = ctx_BTD.size(0), T = ctx_BTD.size(1);
  const int64_t N = cross_attn->num_heads, K = cross_attn->head_dim;
  auto lin = [&](torch::nn::Linear& l, int slot) {
    auto y = l(ctx_BTD);
    return lora ? lora->apply(layer, slot, ctx_BTD, y) : y;
  };
  auto k = cross_attn->norm_k(lin(cross_attn->k, kCrossK)).view({B, T, N, K});
  auto v = lin(cross_attn->v, kCrossV).view({B, T, N, K});
  return {k, v};
}

torch::Tensor WanAttentionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& e0,
                                             const torch::Tensor& ctx_k,
                                             const torch::Tensor& ctx_v, const RopeTable& rope,
                                             const AttnSpec& spec, int64_t layer) {
  const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
  const int64_t N = self_attn->num_heads, K = self_attn->head_dim;
  // (self.modulation + e).chunk(6): mod [B,F',6,D] float32
  auto mod = modulation.to(torch::kFloat32).unsqueeze(1) + e0;
  auto m = [&](int i) { return mod.select(2, i).unsqueeze(2); };  // [B,F',1,D]

  // ---- self-attention
  // A block linear with its LoRA adapter, if any.
  auto lin = [&](torch::nn::Linear& l, int slot, const torch::Tensor& in) {
    auto y = l(in);
    return spec.lora ? spec.lora->apply(layer, slot, in, y) : y;
  };
  auto h = modulate(x, m(0), 1 + m(1), cfg_.eps);
  torch::Tensor q, k, v;
  if (torch::GradMode::is_enabled() || spec.lora) {
    // Training: three GEMMs (a fused one costs a weight concat per call and slice/cat
    // backwards that measured slower than it saves).
    q = self_attn->norm_q(lin(self_attn->q, kSelfQ, h)).view({B, L, N, K});
    k = self_attn->norm_k(lin(self_attn->k, kSelfK, h)).view({B, L, N, K});
    v = lin(self_attn->v, kSelfV, h).view({B, L, N, K});
  } else {
    // Inference: q/k/v as one GEMM.
    auto w_qkv = torch::cat({self_attn->q->weight, self_attn->k->weight, self_attn->v->weight}, 0);
    auto b_qkv = torch::cat({self_attn->q->bias, self_attn->k->bias, self_attn->v->bias}, 0);
    auto qkv = torch::linear(h, w_qkv, b_qkv);  // [B,L,3D]
    q = self_attn->norm_q(qkv.slice(2, 0, D)).view({B, L, N, K});
    k = self_attn->norm_k(qkv.slice(2, D, 2 * D)).view({B, L, N, K});
    v = qkv.slice(2, 2 * D, 3 * D).reshape({B, L, N, K});
  }
  q = apply_rope(q, rope);
  k = apply_rope(k, rope);
  torch::Tensor a;
  switch (spec.kind) {
    case AttnSpec::kFull: a = attention(q, k, v); break;
    case AttnSpec::kBlockCausal: a = block_causal_attention(q, k, v, spec.block_tokens); break;
    case AttnSpec::kTeacherForcing:
      a = teacher_forcing_attention(q, k, v, spec.block_tokens);
      break;
    case AttnSpec::kKvCache: {
      if (spec.past_k.defined() && torch::GradMode::is_enabled()) {
        // Recomputation in backward: the cached past as it was, then the block's own keys.
        a = attention(q, torch::cat({spec.past_k, k}, 1), torch::cat({spec.past_v, v}, 1));
        break;
      }
      auto kv = spec.cache->update(layer, k, v, spec.current_start, spec.current_start + L);
      a = attention(q, kv.first, kv.second);
      break;
    }
  }
  auto y = lin(self_attn->o, kSelfO, a.reshape({B, L, D}));
  auto xo = gated_add(x, y, m(2));

  // ---- cross-attention (no RoPE, no mask, no gate)
  // WanLayerNorm(affine): super().forward(x.float()).type_as(x)
  auto xc = norm3 ? torch::layer_norm(xo.to(torch::kFloat32), {D}, norm3->weight.to(torch::kFloat32),
                                      norm3->bias.to(torch::kFloat32), cfg_.eps)
                        .to(xo.scalar_type())
                  : xo;
  auto qc = cross_attn->norm_q(lin(cross_attn->q, kCrossQ, xc)).view({B, L, N, K});
  xo = xo + lin(cross_attn->o, kCrossO, attention(qc, ctx_k, ctx_v).reshape({B, L, D}));

  // ---- feed-forward
  auto h2 = modulate(xo, m(3), 1 + m(4), cfg_.eps);
  auto f0 = ffn->at(0), f2 = ffn->at(2);
  auto f = lin(f2, kFfn2, torch::gelu(lin(f0, kFfn0, h2), "tanh"));
  return gated_add(xo, f, m(5));
}

WanModelImpl::WanModelImpl(const WanConfig& cfg) : cfg_(cfg) {
  cfg.validate();
  const int64_t D = cfg.dim;
  auto ps = cfg.patch_size;
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv3d(torch::nn::Conv3dOptions(cfg.in_dim, D, {ps[0], ps[1], ps[2]})
                            .stride({ps[0], ps[1], ps[2]})));
  text_embedding = register_module(
      "text_embedding", linears(std::vector<int>{0, 2}, LinearDims{{cfg.text_dim, D}, {D, D}}));
  time_embedding = register_module(
      "time_embedding", linears(std::vector<int>{0, 2}, LinearDims{{cfg.freq_dim, D}, {D, D}}));
  time_projection =
      register_module("time_projection", linears(std::vector<int>{1}, LinearDims{{D, 6 * D}}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_layers; ++i) blocks->push_back(WanAttentionBlock(cfg));
  head = register_module("head", Head(D, cfg.out_dim * cfg.patch_volume()));
}

torch::Tensor sinusoidal_embedding(int64_t dim, const torch::Tensor& t) {
  const int64_t half = dim / 2;
  auto pos = t.to(torch::kFloat64).flatten();
  auto f64 = pos.options();
  auto freqs = torch::pow(10000.0, -torch::arange(half, f64).div(double(half)));
  auto s = torch::outer(pos, freqs);
  return torch::cat({torch::cos(s), torch::sin(s)}, 1).to(torch::kFloat32);
}

torch::Tensor WanModelImpl::embed_context(const torch::Tensor& ctx) {
  TORCH_CHECK(ctx.dim() == 3 && ctx.size(2) == cfg_.text_dim, "context: got ", ctx.sizes(),
              ", want [B, L <= ", cfg_.text_len, ", ", cfg_.text_dim, "]");
  TORCH_CHECK(ctx.size(1) <= cfg_.text_len, "context: ", ctx.size(1),
              " tokens exceed text_len ", cfg_.text_len);
  auto w = text_embedding->at(0)->weight;
  auto c = ctx.to(w.device(), w.scalar_type());
  if (c.size(1) < cfg_.text_len)  // zero-pad to text_len; padded rows are NOT masked
    c = torch::cat({c, c.new_zeros({c.size(0), cfg_.text_len - c.size(1), c.size(2)})}, 1);
  return text_embedding->at(2)(torch::gelu(text_embedding->at(0)(c), "tanh"));
}

// Patchify: Conv3d with kernel == stride as a GEMM over (c, kt, kh, kw) features.
torch::Tensor WanModelImpl::patchify(const torch::Tensor& v) const {
  const auto& ps = cfg_.patch_size;
  const int64_t B = v.size(0), C = v.size(1), f = v.size(2) / ps[0], h = v.size(3) / ps[1],
                w = v.size(4) / ps[2];
  auto vp = v.to(patch_embedding->weight.device(), patch_embedding->weight.scalar_type())
                .view({B, C, f, ps[0], h, ps[1], w, ps[2]})
                .permute({0, 2, 4, 6, 1, 3, 5, 7})
                .reshape({B, f * h * w, C * cfg_.patch_volume()});
  return torch::linear(vp, patch_embedding->weight.view({cfg_.dim, -1}), patch_embedding->bias);
}

// Time embedding (float32 as the reference's autocast(float32) region): e [B,F',D] for the
// head and the blocks' modulation e0 [B,F',6,D].
std::pair<torch::Tensor, torch::Tensor> WanModelImpl::embed_time(const torch::Tensor& t) const {
  const int64_t B = t.size(0), Fm = t.size(1), D = cfg_.dim;
  const auto dev = patch_embedding->weight.device();
  auto sin_emb = sinusoidal_embedding(cfg_.freq_dim, t.to(dev))
                     .to(patch_embedding->weight.scalar_type());  // [B*F', freq]
  auto et = time_embedding->at(2)(torch::silu(time_embedding->at(0)(sin_emb)));
  auto e0 = time_projection->at(1)(torch::silu(et)).to(torch::kFloat32).view({B, Fm, 6, D});
  return {et.to(torch::kFloat32).view({B, Fm, D}), e0};
}

torch::Tensor WanModelImpl::run_blocks(torch::Tensor tokens, const torch::Tensor& e0,
                                       const torch::Tensor& ctx, const RopeTable& rope,
                                       const AttnSpec& spec, CrossAttnCache* xcache,
                                       bool grad_ckpt, int64_t L) {
  // A KV-cache call with gradient whose blocks may be recomputed in backward (gradient
  // checkpointing, or an FSDP block runner): the recomputation must neither write the
  // cache (other blocks' recomputations read it, in an order autograd chooses) nor read
  // slots rewritten since, so each layer gets the keys/values its block attends to besides
  // its own (KvCache::past) and recomputes against those.
  const bool recomputed = spec.kind == AttnSpec::kKvCache && torch::GradMode::is_enabled() &&
                          (grad_ckpt || block_runner_);
  const int64_t own = spec.kind == AttnSpec::kKvCache ? L : 0;
  // Trained adapters on a frozen base: a block recomputed in backward (block runner,
  // checkpointing) is only back-propagated when its input requires grad, which the frozen
  // embeddings' output does not; the adapters' gradients come from that recomputation.
  if (spec.lora && torch::GradMode::is_enabled() && !tokens.requires_grad() &&
      spec.lora->trainable())
    tokens = tokens.detach().requires_grad_(true);
  for (size_t i = 0; i < blocks->size(); ++i) {
    auto block = blocks[i]->as<WanAttentionBlockImpl>();
    AttnSpec bspec = spec;
    if (recomputed)
      std::tie(bspec.past_k, bspec.past_v) =
          spec.cache->past(int64_t(i), spec.current_start, spec.current_start + own);
    if (block_runner_) {
      tokens = run_block_with_runner(block_runner_, block, i, tokens, e0, ctx, rope, bspec, xcache);
      continue;
    }
    auto [ck, cv] = cross_kv_cached(block, i, ctx, xcache, spec.lora);
    if (grad_ckpt) {
      tokens = checkpoint(
          [block, rope, bspec, i](const std::vector<torch::Tensor>& in) {
            return block->forward(in[0], in[1], in[2], in[3], rope, bspec, int64_t(i));
          },
          {tokens, e0, ck, cv});
    } else {
      tokens = block->forward(tokens, e0, ck, cv, rope, bspec, int64_t(i));
    }
  }
  return tokens;
}

torch::Tensor WanModelImpl::run(const torch::Tensor& x, const torch::Tensor& t_BF,
                                const torch::Tensor& context, const AttnSpec& spec_in,
                                CrossAttnCache* xcache, const torch::Tensor& clean,
                                const torch::Tensor& clean_t) {
  // Self-Forcing's causal model with gradient checkpointing on does not pass the
  // cross-attention cache to blocks that run with grad: their context K/V are computed
  // from the text again (so text_embedding and cross_attn k/v get gradients).
  const bool grad_ckpt = gradient_checkpointing_ && torch::GradMode::is_enabled();
  if (grad_ckpt && spec_in.kind == AttnSpec::kKvCache) xcache = nullptr;
  const auto& ps = cfg_.patch_size;
  TORCH_CHECK(x.dim() == 5 && x.size(1) == cfg_.in_dim, "x: got ", x.sizes(),
              ", want [B, ", cfg_.in_dim, ", F, H, W]");
  const int64_t B = x.size(0), C = x.size(1), Fr = x.size(2), H = x.size(3), W = x.size(4);
  TORCH_CHECK(Fr % ps[0] == 0 && H % ps[1] == 0 && W % ps[2] == 0, "x: frames/height/width ",
              Fr, "x", H, "x", W, " not divisible by patch size ", ps[0], "x", ps[1], "x", ps[2]);
  const int64_t f = Fr / ps[0], h = H / ps[1], w = W / ps[2], L = f * h * w, D = cfg_.dim;
  TORCH_CHECK(t_BF.dim() == 2 && t_BF.size(0) == B, "t: got ", t_BF.sizes(), ", want [", B,
              ", F]");
  const int64_t Fm = t_BF.size(1);  // modulation frames: 1 (bidirectional) or f (causal)
  TORCH_CHECK(Fm == 1 || Fm == f, "t: ", Fm, " timesteps per sample for ", f, " latent frames");

  auto tokens = patchify(x);
  auto [e, e0] = embed_time(t_BF);

  // Teacher forcing (Causal Forcing): the clean context's tokens first, modulated by its own
  // timestep (zeros, or the noise augmentation's); the output is the noisy half.
  const bool tf = spec_in.kind == AttnSpec::kTeacherForcing;
  if (tf) {
    TORCH_CHECK(clean.defined() && clean.sizes() == x.sizes() && Fm == f, "teacher forcing: clean ",
                clean.defined() ? clean.sizes() : at::IntArrayRef{}, " for x ", x.sizes(),
                " with ", Fm, " timesteps per sample, want the same shape and one per frame");
    tokens = torch::cat({patchify(clean), tokens}, 1);
    auto e0c = embed_time(clean_t.defined() ? clean_t : torch::zeros_like(t_BF)).second;
    e0 = torch::cat({e0c, e0}, 1);
  }

  // Context: embedded once; its cross-attention K/V per block (cached in inference).
  torch::Tensor ctx;
  if (!(xcache && xcache->valid)) ctx = embed_context(context);

  AttnSpec spec = spec_in;
  spec.lora = lora_ ? lora_.get() : nullptr;
  int64_t frame_offset = 0;
  if (spec.kind == AttnSpec::kKvCache) {
    TORCH_CHECK(spec.current_start % (h * w) == 0, "current_start ", spec.current_start,
                " is not a multiple of the frame length ", h * w);
    frame_offset = spec.current_start / (h * w);
  }
  if (spec.kind == AttnSpec::kBlockCausal || tf) spec.block_tokens *= h * w;  // frames -> tokens
  auto rope = rope_table(cfg_.head_dim(), f, h, w, frame_offset, x.device());
  if (tf) rope.rot = torch::cat({rope.rot, rope.rot}, 0);  // the same positions for both halves

  tokens = run_blocks(tokens, e0, ctx, rope, spec, xcache, grad_ckpt, L);
  if (xcache) xcache->valid = true;
  if (tf) tokens = tokens.slice(1, L, 2 * L);

  // Head: (modulation + e).chunk(2); out = head(LN(x)*(1+s)+shift)
  auto hm = head->modulation.to(torch::kFloat32).unsqueeze(1) + e.unsqueeze(2);  // [B,F',2,D]
  auto hx = modulate(tokens, hm.select(2, 0).unsqueeze(2), 1 + hm.select(2, 1).unsqueeze(2),
                     cfg_.eps);
  auto out = head->head(hx);  // [B,L,pt*ph*pw*c]
  // Unpatchify: features ordered (kt, kh, kw, c).
  const int64_t Co = cfg_.out_dim;
  return out.view({B, f, h, w, ps[0], ps[1], ps[2], Co})
      .permute({0, 7, 1, 4, 2, 5, 3, 6})
      .reshape({B, Co, Fr, H, W});
}

torch::Tensor WanModelImpl::forward(const torch::Tensor& x, const torch::Tensor& t_B,
                                    const torch::Tensor& context, int64_t seq_len) {
  TORCH_CHECK(t_B.dim() == 1, "t: got ", t_B.sizes(), ", want [B]");
  if (seq_len >= 0) {
    const int64_t tokens = x.size(2) / cfg_.patch_size[0] * (x.size(3) / cfg_.patch_size[1]) *
                           (x.size(4) / cfg_.patch_size[2]);
    TORCH_CHECK(seq_len >= tokens, "seq_len: got ", seq_len, ", want >= the ", tokens,
                " tokens of the input");
  }
  return run(x, t_B.unsqueeze(1), context, AttnSpec{}, nullptr);
}

torch::Tensor WanModelImpl::forward_causal(const torch::Tensor& x, const torch::Tensor& t_BF,
                                           const torch::Tensor& context, int64_t nfpb) {
  TORCH_CHECK(nfpb > 0 && x.dim() == 5 && x.size(2) % nfpb == 0, "num_frame_per_block: ",
              x.dim() == 5 ? x.size(2) : -1, " latent frames are not divisible by ", nfpb);
  TORCH_CHECK(t_BF.dim() == 2 && t_BF.size(1) == x.size(2), "t: got ", t_BF.sizes(),
              ", want [B, ", x.size(2), "] (one timestep per latent frame)");
  AttnSpec spec;
  spec.kind = AttnSpec::kBlockCausal;
  spec.block_tokens = nfpb / cfg_.patch_size[0];  // in frames; converted to tokens in run()
  return run(x, t_BF, context, spec, nullptr);
}

torch::Tensor WanModelImpl::forward_teacher_forcing(const torch::Tensor& x,
                                                    const torch::Tensor& t_BF,
                                                    const torch::Tensor& context,
                                                    const torch::Tensor& clean,
                                                    const torch::Tensor& clean_t, int64_t nfpb) {
  TORCH_CHECK(nfpb > 0 && x.dim() == 5 && x.size(2) % nfpb == 0, "num_frame_per_block: ",
              x.dim() == 5 ? x.size(2) : -1, " latent frames are not divisible by ", nfpb);
  AttnSpec spec;
  spec.kind = AttnSpec::kTeacherForcing;
  spec.block_tokens = nfpb / cfg_.patch_size[0];
  return run(x, t_BF, context, spec, nullptr, clean, clean_t);
}

torch::Tensor WanModelImpl::forward_cached(const torch::Tensor& x, const torch::Tensor& t_BF,
                                           const torch::Tensor& context, KvCache& cache,
                                           CrossAttnCache& xcache, int64_t current_start) {
  TORCH_CHECK(t_BF.dim() == 2 && x.dim() == 5 && t_BF.size(1) == x.size(2), "t: got ",
              t_BF.sizes(), ", want [B, frames of the block]");
  AttnSpec spec;
  spec.kind = AttnSpec::kKvCache;
  spec.cache = &cache;
  spec.current_start = current_start;
  return run(x, t_BF, context, spec, &xcache);
}

KvCacheOptions WanModelImpl::kv_cache_options(int64_t batch, int64_t frame_seqlen,
                                              int64_t max_frames) const {
  KvCacheOptions o;
  o.batch = batch;
  o.num_layers = cfg_.num_layers;
  o.num_heads = cfg_.num_heads;
  o.head_dim = cfg_.head_dim();
  o.frame_seqlen = frame_seqlen;
  o.max_frames = max_frames;
  o.dtype = patch_embedding->weight.scalar_type();
  o.device = patch_embedding->weight.device();
  return o;
}

void WanModelImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  auto xavier = [&](torch::Tensor w) {  // xavier_uniform on [out, in...]
    const double fan_out = w.size(0), fan_in = w.numel() / w.size(0);
    const double a = std::sqrt(6.0 / (fan_in + fan_out));
    w.uniform_(-a, a, gen);
  };
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* lin = m->as<torch::nn::LinearImpl>()) {
      xavier(lin->weight);
      lin->bias.zero_();
    }
  }
  xavier(patch_embedding->weight);
  patch_embedding->bias.zero_();
  for (int i : {0, 2}) {
    text_embedding->at(i)->weight.normal_(0, 0.02, gen);
    time_embedding->at(i)->weight.normal_(0, 0.02, gen);
  }
  head->head->weight.zero_();
  const double s = 1.0 / std::sqrt(double(cfg_.dim));
  for (size_t i = 0; i < blocks->size(); ++i)
    blocks[i]->as<WanAttentionBlockImpl>()->modulation.normal_(0, 1, gen).mul_(s);
  head->modulation.normal_(0, 1, gen).mul_(s);
}

}  // namespace causvid::models
