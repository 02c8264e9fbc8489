// models/common/attention.h: the one attention function of the framework.
// Two kernels behind one interface:
//  - sdpa (default): at::scaled_dot_product_attention, which picks flash / memory-efficient
//    / cuDNN kernels on CUDA and the flash kernel on CPU.
//  - chunked: our own memory-efficient softmax attention: queries are processed in chunks so
//    that the score buffer is O(chunk x keys), never O(L^2), in forward AND backward (a
//    custom autograd function saves q, k, v, the output and the per-row log-sum-exp, and
//    recomputes the probabilities chunk by chunk in backward, as flash-attention does).
//    Kept for `bench dit`, which measures it against sdpa in the same run.
// The kernel is chosen with set_attention_backend() or CAUSVID_ATTENTION=sdpa|chunked.
// Math: softmax(q k^T / sqrt(d)) v in the input dtype with float32 softmax statistics;
// the reference (Wan2.1 flash_attention) is the same function.
// Layout legend: B batch, L query tokens, S key tokens, N heads, K head dim.
#pragma once

#include <torch/torch.h>

namespace causvid::models {

enum class AttentionBackend { kSdpa, kChunked };
AttentionBackend attention_backend();
void set_attention_backend(AttentionBackend b);
// "sdpa" | "chunked"; anything else is an error naming the value.
AttentionBackend parse_attention_backend(const std::string& s);

// Upper bound on the number of score elements materialised at once (per chunk).
int64_t attention_chunk_budget();
void set_attention_chunk_budget(int64_t elements);

// q_BLNK [B,L,N,K], k_BSNK / v_BSNK [B,S,N,K] -> [B,L,N,K]. Full (unmasked) attention.
torch::Tensor attention(const torch::Tensor& q_BLNK, const torch::Tensor& k_BSNK,
                        const torch::Tensor& v_BSNK);

// Block-causal attention over one sequence: tokens form consecutive blocks of
// `block_tokens`; query block i attends to keys [0, (i+1)*block_tokens) (itself and
// everything before it). Implemented as one attention call per query block over its key
// prefix, never with an L x L mask. L must be a multiple of block_tokens.
torch::Tensor block_causal_attention(const torch::Tensor& q_BLNK, const torch::Tensor& k_BLNK,
                                     const torch::Tensor& v_BLNK, int64_t block_tokens);

// Teacher forcing (Causal Forcing's AR diffusion): the sequence is [clean tokens, noisy
// tokens], each half L = F*h*w tokens in blocks of `block_tokens`. Clean block i attends to
// clean blocks 0..i; noisy block i attends to clean blocks 0..i-1 and to itself (the
// reference's _prepare_teacher_forcing_mask). One attention call per query block.
torch::Tensor teacher_forcing_attention(const torch::Tensor& q_BLNK, const torch::Tensor& k_BLNK,
                                        const torch::Tensor& v_BLNK, int64_t block_tokens);

// The textbook formula with an optional boolean mask [L,S] (true = may attend); O(L*S)
// memory. For tests only.
torch::Tensor naive_attention(const torch::Tensor& q_BLNK, const torch::Tensor& k_BSNK,
                              const torch::Tensor& v_BSNK,
                              const torch::Tensor& mask_LS = torch::Tensor());

}  // namespace causvid::models
