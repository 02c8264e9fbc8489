// models/wan/wan_model.h: Wan2.1's diffusion transformer (WanModel, t2v) and its causal
// variant (CausVid's CausalWanModel) in one module tree with the reference's parameter names,
// so named_parameters() yields the keys of real Wan2.1 / CausVid checkpoints.
// Ports causvid/models/wan/wan_base/modules/model.py (WanModel, WanAttentionBlock, Head,
// WanSelfAttention, WanT2VCrossAttention, sinusoidal_embedding_1d, rope_apply) and
// causvid/models/wan/causal_model.py (CausalWanModel: _forward_train with the block-causal
// flex_attention mask, _forward_inference with kv_cache/crossattn_cache).
//
// Deliberate differences (numerically within the fixtures' float32 tolerance):
//  - RoPE uses precomputed float32 cos/sin tables instead of complex float64 per call.
//  - Attention is our chunked softmax attention (models/common/attention.h), not flash-attn.
//  - seq_len padding of the bidirectional model is not materialised: padded tokens can
//    neither be attended to (k_lens) nor influence real tokens, and their outputs are
//    dropped by unpatchify, so computing only the T real tokens gives identical results.
//  - q, k, v projections run as one GEMM on the concatenated weights (same math).
//  - The patch-embedding Conv3d (kernel == stride) runs as a reshape + GEMM.
//
// Legend: B batch, C channels, F latent frames, H W latent height/width, L tokens,
// D model dim, N heads, K head dim, T text tokens, E text_dim.
#pragma once

#include <torch/torch.h>

#include "models/common/block_runner.h"
#include "models/wan/kv_cache.h"
#include "models/wan/lora_adapters.h"
#include "models/wan/wan_config.h"

namespace causvid::models {

// A Linear-holding container whose children are named "0"/"1"/"2" like nn.Sequential.
class SequentialLinearsImpl : public torch::nn::Module {
 public:
  // indices: the Sequential positions holding Linear layers; dims: (in, out) for each.
  SequentialLinearsImpl(std::vector<int> indices, std::vector<std::pair<int64_t, int64_t>> dims);
  torch::nn::Linear at(int index) const;

 private:
  std::map<int, torch::nn::Linear> layers_;
};
TORCH_MODULE(SequentialLinears);

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

class WanAttentionImpl : public torch::nn::Module {  // self_attn and cross_attn
 public:
  WanAttentionImpl(int64_t dim, int64_t num_heads, bool qk_norm, double eps);
  torch::nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, o{nullptr};
  RMSNorm norm_q{nullptr}, norm_k{nullptr};
  int64_t num_heads, head_dim;
};
TORCH_MODULE(WanAttention);

class HeadImpl : public torch::nn::Module {
 public:
  HeadImpl(int64_t dim, int64_t out_features);
  torch::Tensor modulation;  // [1, 2, D]
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(Head);

// How the self-attention of a forward pass is masked.
struct AttnSpec {
  enum Kind { kFull, kBlockCausal, kKvCache, kTeacherForcing } kind = kFull;
  int64_t block_tokens = 0;            // kBlockCausal, kTeacherForcing: tokens per block
  KvCache* cache = nullptr;            // kKvCache
  int64_t current_start = 0;           // kKvCache: global token offset of this block
  // kKvCache, set per layer when the block may be recomputed in backward: the cached keys/
  // values the block attends to besides its own; a forward with grad then attends to
  // [past, own] and leaves the cache alone.
  torch::Tensor past_k, past_v;
  const LoraAdaptersImpl* lora = nullptr;  // on-the-fly LoRA of the block linears (set by run)
};

class WanAttentionBlockImpl : public torch::nn::Module {
 public:
  WanAttentionBlockImpl(const WanConfig& cfg);
  // x_BLD tokens; e0_BF6D per-frame modulation (F' = 1 or frames); ctx_k/ctx_v [B,T,N,K]
  // precomputed cross-attention keys/values; rope table of the L tokens.
  torch::Tensor forward(const torch::Tensor& x_BLD, const torch::Tensor& e0_BF6D,
                        const torch::Tensor& ctx_k, const torch::Tensor& ctx_v,
                        const struct RopeTable& rope, const AttnSpec& spec, int64_t layer);
  // Cross-attention keys/values of the embedded context [B,T,D] -> ([B,T,N,K], [B,T,N,K]).
  std::pair<torch::Tensor, torch::Tensor> cross_kv(const torch::Tensor& ctx_BTD, int64_t layer = 0,
                                                   const LoraAdaptersImpl* lora = nullptr);

  torch::Tensor modulation;  // [1, 6, D]
  WanAttention self_attn{nullptr}, cross_attn{nullptr};
  torch::nn::LayerNorm norm3{nullptr};  // affine, only if cross_attn_norm
  SequentialLinears ffn{nullptr};

 private:
  WanConfig cfg_;
};
TORCH_MODULE(WanAttentionBlock);

class WanModelImpl : public torch::nn::Module, public BlockRunnerHost {
 public:
  explicit WanModelImpl(const WanConfig& cfg);

  // Bidirectional WanModel.forward (t2v): x [B,C,F,H,W], t [B], context [B,T',E] with
  // T' <= text_len -> flow prediction [B,C_out,F,H,W]. seq_len (>= tokens) is accepted for
  // API parity; see the header comment.
  torch::Tensor forward(const torch::Tensor& x_BCFHW, const torch::Tensor& t_B,
                        const torch::Tensor& context_BTE, int64_t seq_len = -1);

  // CausalWanModel._forward_train: per-frame timesteps t [B,F] and block-causal attention
  // with num_frame_per_block latent frames per block.
  torch::Tensor forward_causal(const torch::Tensor& x_BCFHW, const torch::Tensor& t_BF,
                               const torch::Tensor& context_BTE, int64_t num_frame_per_block);

  // CausalWanModel._forward_train with clean_x (Causal Forcing's teacher forcing): the
  // noisy x [B,C,F,H,W] at per-frame t attends block-causally to the clean context `clean`
  // (same shape; its modulation from clean_t [B,F], zeros when undefined).
  torch::Tensor forward_teacher_forcing(const torch::Tensor& x_BCFHW, const torch::Tensor& t_BF,
                                        const torch::Tensor& context_BTE,
                                        const torch::Tensor& clean_BCFHW,
                                        const torch::Tensor& clean_t_BF,
                                        int64_t num_frame_per_block);

  // CausalWanModel._forward_inference: x is one block [B,C,f,H,W] at global token offset
  // current_start; keys/values go to `cache`; cross-attention K/V come from `xcache`
  // (filled on first use).
  torch::Tensor forward_cached(const torch::Tensor& x_BCFHW, const torch::Tensor& t_BF,
                               const torch::Tensor& context_BTE, KvCache& cache,
                               CrossAttnCache& xcache, int64_t current_start);

  // A KV cache sized for this model (plain cache of max_frames latent frames, or rolling).
  KvCacheOptions kv_cache_options(int64_t batch, int64_t frame_seqlen, int64_t max_frames) const;

  // Wan2.1's init_weights (xavier_uniform linears, zero biases, normal(0.02) embeddings,
  // zero head) for training from scratch.
  void init_weights(uint64_t seed);
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }
  // Trainable LoRA adapters applied on the fly in every forward (null = none). The model
  // does not own their training: trainer/train_model.h keeps them in their own module.
  void set_lora(LoraAdapters lora) { lora_ = std::move(lora); }
  const LoraAdapters& lora() const { return lora_; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }
  // Per-block call hook (see models/common/block_runner.h). While set, every block call
  // (its cross-attention K/V projection included) goes through the runner, which then owns
  // recomputation: gradient checkpointing is not applied on top.
  void set_block_runner(BlockRunner runner) override { block_runner_ = std::move(runner); }
  std::string block_list_name() const override { return "blocks"; }
  const WanConfig& config() const { return cfg_; }
  // Where the weights live (inputs on another device are moved here by the forwards).
  torch::Device device() const { return patch_embedding->weight.device(); }

  torch::nn::Conv3d patch_embedding{nullptr};
  SequentialLinears text_embedding{nullptr}, time_embedding{nullptr}, time_projection{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  Head head{nullptr};

 private:
  torch::Tensor run(const torch::Tensor& x_BCFHW, const torch::Tensor& t_BF,
                    const torch::Tensor& context_BTE, const AttnSpec& spec,
                    CrossAttnCache* xcache, const torch::Tensor& clean = {},
                    const torch::Tensor& clean_t = {});
  torch::Tensor embed_context(const torch::Tensor& context_BTE);
  torch::Tensor patchify(const torch::Tensor& x_BCFHW) const;  // -> tokens [B, L, D]
  std::pair<torch::Tensor, torch::Tensor> embed_time(const torch::Tensor& t_BF) const;
  torch::Tensor run_blocks(torch::Tensor tokens, const torch::Tensor& e0, const torch::Tensor& ctx,
                           const struct RopeTable& rope, const AttnSpec& spec,
                           CrossAttnCache* xcache, bool grad_ckpt, int64_t L);

  WanConfig cfg_;
  bool gradient_checkpointing_ = false;
  BlockRunner block_runner_;
  LoraAdapters lora_{nullptr};
};
TORCH_MODULE(WanModel);

// sinusoidal_embedding_1d: [n] -> [n, dim] (cos first), computed in float64, cast to float32.
torch::Tensor sinusoidal_embedding(int64_t dim, const torch::Tensor& t);

}  // namespace causvid::models
