// models/common/attention.cpp: see attention.h.
#include "models/common/attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>

namespace causvid::models {
namespace {

std::atomic<int64_t> g_budget{int64_t(1) << 24};  // 16M floats = 64 MiB of scores

AttentionBackend initial_backend() {
  const char* v = std::getenv("CAUSVID_ATTENTION");
  return v && *v ? parse_attention_backend(v) : AttentionBackend::kSdpa;
}
std::atomic<AttentionBackend> g_backend{initial_backend()};

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Chunk plan over the flattened batch*heads axis (G) and the query axis (L).
struct Plan {
  int64_t heads_per_chunk, rows_per_chunk;
};

Plan make_plan(int64_t G, int64_t L, int64_t S) {
  const int64_t budget = std::max<int64_t>(g_budget.load(), S);
  int64_t rows = std::clamp<int64_t>(budget / std::max<int64_t>(G * S, 1), 1, L);
  if (rows >= std::min<int64_t>(L, 128)) return {G, rows};
  // Too many heads for useful row chunks: split the heads too.
  int64_t rows_target = std::min<int64_t>(L, 256);
  int64_t heads = std::clamp<int64_t>(budget / (rows_target * S), 1, G);
  rows = std::clamp<int64_t>(budget / (heads * S), 1, L);
  return {heads, rows};
}

// q_GLK, k_GSK, v_GSK contiguous. Returns out_GLK and, when want_lse, lse_GL (float32).
// The scale is folded into q (one pass over L*K instead of one over L*S); without lse the
// fused softmax kernel is used (inference), with it the probabilities are exp(s - lse).
std::pair<torch::Tensor, torch::Tensor> forward_impl(const torch::Tensor& q,
                                                     const torch::Tensor& k,
                                                     const torch::Tensor& v, double scale,
                                                     bool want_lse) {
  const int64_t G = q.size(0), L = q.size(1), S = k.size(1);
  auto out = torch::empty_like(q);
  torch::Tensor lse;
  if (want_lse) lse = torch::empty({G, L}, q.options().dtype(torch::kFloat32));
  const Plan p = make_plan(G, L, S);
  const bool low_precision = q.scalar_type() != torch::kFloat32;
  for (int64_t g0 = 0; g0 < G; g0 += p.heads_per_chunk) {
    const int64_t g1 = std::min(G, g0 + p.heads_per_chunk);
    auto kt = k.slice(0, g0, g1).transpose(1, 2);  // [g,K,S]
    auto vg = v.slice(0, g0, g1);
    for (int64_t r0 = 0; r0 < L; r0 += p.rows_per_chunk) {
      const int64_t r1 = std::min(L, r0 + p.rows_per_chunk);
      auto qc = q.slice(0, g0, g1).slice(1, r0, r1) * scale;
      auto s = torch::bmm(qc, kt);  // [g,r,S]
      if (low_precision) s = s.to(torch::kFloat32);
      torch::Tensor prob;
      if (want_lse) {
        auto l = torch::logsumexp(s, -1, true);  // [g,r,1]
        prob = s.sub_(l).exp_();
        lse.slice(0, g0, g1).slice(1, r0, r1).copy_(l.squeeze(-1));
      } else {
        prob = torch::softmax(s, -1);
      }
      out.slice(0, g0, g1).slice(1, r0, r1).copy_(torch::bmm(prob.to(v.scalar_type()), vg));
    }
  }
  return {out, lse};
}

class ChunkedAttention : public torch::autograd::Function<ChunkedAttention> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor q, torch::Tensor k,
                               torch::Tensor v, double scale) {
    auto res = forward_impl(q, k, v, scale, /*want_lse=*/true);
    ctx->save_for_backward({q, k, v, res.first, res.second});
    ctx->saved_data["scale"] = scale;
    return res.first;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto q = saved[0], k = saved[1], v = saved[2], o = saved[3], lse = saved[4];
    const double scale = ctx->saved_data["scale"].toDouble();
    auto dout = grads[0].contiguous();
    const int64_t G = q.size(0), L = q.size(1), S = k.size(1);
    auto f32 = [](const torch::Tensor& t) { return t.to(torch::kFloat32); };
    auto dq = torch::zeros(q.sizes(), q.options().dtype(torch::kFloat32));
    auto dk = torch::zeros(k.sizes(), k.options().dtype(torch::kFloat32));
    auto dv = torch::zeros(v.sizes(), v.options().dtype(torch::kFloat32));
    // delta = rowsum(dO * O)
    auto delta = (f32(dout) * f32(o)).sum(-1, true);  // [G,L,1]
    const Plan p = make_plan(G, L, S);
    for (int64_t g0 = 0; g0 < G; g0 += p.heads_per_chunk) {
      const int64_t g1 = std::min(G, g0 + p.heads_per_chunk);
      auto kg = f32(k.slice(0, g0, g1)), vg = f32(v.slice(0, g0, g1));
      auto dkg = dk.slice(0, g0, g1), dvg = dv.slice(0, g0, g1);
      for (int64_t r0 = 0; r0 < L; r0 += p.rows_per_chunk) {
        const int64_t r1 = std::min(L, r0 + p.rows_per_chunk);
        auto qc = f32(q.slice(0, g0, g1).slice(1, r0, r1));
        auto doc = f32(dout.slice(0, g0, g1).slice(1, r0, r1));
        auto P = torch::bmm(qc, kg.transpose(1, 2));  // [g,r,S]
        P.mul_(scale).sub_(lse.slice(0, g0, g1).slice(1, r0, r1).unsqueeze(-1)).exp_();
        dvg.add_(torch::bmm(P.transpose(1, 2), doc));
        auto dP = torch::bmm(doc, vg.transpose(1, 2));
        dP.sub_(delta.slice(0, g0, g1).slice(1, r0, r1)).mul_(P).mul_(scale);  // dS * scale
        dq.slice(0, g0, g1).slice(1, r0, r1).copy_(torch::bmm(dP, kg));
        dkg.add_(torch::bmm(dP.transpose(1, 2), qc));
      }
    }
    return {dq.to(q.scalar_type()), dk.to(k.scalar_type()), dv.to(v.scalar_type()),
            torch::Tensor()};
  }
};

// [B,L,N,K] -> [B*N,L,K] contiguous
torch::Tensor to_GLK(const torch::Tensor& x) {
  return x.permute({0, 2, 1, 3}).reshape({x.size(0) * x.size(2), x.size(1), x.size(3)});
}

}  // namespace

AttentionBackend parse_attention_backend(const std::string& s) {
  if (s == "sdpa") return AttentionBackend::kSdpa;
  if (s == "chunked") return AttentionBackend::kChunked;
  TORCH_CHECK(false, "attention backend (CAUSVID_ATTENTION / --attention): got '", s,
              "', want sdpa or chunked");
}
AttentionBackend attention_backend() { return g_backend.load(); }
void set_attention_backend(AttentionBackend b) { g_backend = b; }

int64_t attention_chunk_budget() { return g_budget.load(); }
void set_attention_chunk_budget(int64_t elements) { g_budget = std::max<int64_t>(elements, 1); }

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: want [B,L,N,K] inputs");
  TORCH_CHECK(k.sizes() == v.sizes() && q.size(0) == k.size(0) && q.size(2) == k.size(2) &&
                  q.size(3) == k.size(3),
              "attention: q ", q.sizes(), " k ", k.sizes(), " v ", v.sizes(), " do not match");
  const int64_t B = q.size(0), L = q.size(1), N = q.size(2), K = q.size(3);
  if (g_backend.load() == AttentionBackend::kSdpa) {
    // [B,L,N,K] -> [B,N,L,K] views; the kernels take strided inputs.
    auto o = at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                              v.transpose(1, 2));
    return o.transpose(1, 2);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(K));
  torch::Tensor out;
  const bool needs_grad = torch::GradMode::is_enabled() &&
                          (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (needs_grad) {
    out = ChunkedAttention::apply(to_GLK(q), to_GLK(k), to_GLK(v), scale);
  } else {
    out = forward_impl(to_GLK(q), to_GLK(k), to_GLK(v), scale, /*want_lse=*/false).first;
  }
  return out.view({B, N, L, K}).permute({0, 2, 1, 3});
}

torch::Tensor block_causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                                     const torch::Tensor& v, int64_t block_tokens) {
  const int64_t L = q.size(1);
  TORCH_CHECK(block_tokens > 0 && L % block_tokens == 0, "block_causal_attention: ", L,
              " tokens are not a whole number of blocks of ", block_tokens);
  TORCH_CHECK(k.size(1) == L && v.size(1) == L, "block_causal_attention: keys must match queries");
  std::vector<torch::Tensor> outs;
  for (int64_t s = 0; s < L; s += block_tokens) {
    const int64_t e = s + block_tokens;
    outs.push_back(attention(q.slice(1, s, e), k.slice(1, 0, e), v.slice(1, 0, e)));
  }
  return torch::cat(outs, 1);
}

torch::Tensor teacher_forcing_attention(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, int64_t block_tokens) {
  const int64_t L2 = q.size(1), L = L2 / 2;
  TORCH_CHECK(L2 % 2 == 0 && block_tokens > 0 && L % block_tokens == 0,
              "teacher_forcing_attention: ", L2, " tokens are not two halves of whole blocks of ",
              block_tokens);
  TORCH_CHECK(k.size(1) == L2 && v.size(1) == L2,
              "teacher_forcing_attention: keys must match queries");
  std::vector<torch::Tensor> clean, noisy;
  for (int64_t s = 0; s < L; s += block_tokens) {
    const int64_t e = s + block_tokens;
    // Clean block i: the clean blocks up to and including i.
    clean.push_back(attention(q.slice(1, s, e), k.slice(1, 0, e), v.slice(1, 0, e)));
    // Noisy block i: the clean blocks before i, then noisy block i itself.
    auto kk = torch::cat({k.slice(1, 0, s), k.slice(1, L + s, L + e)}, 1);
    auto vv = torch::cat({v.slice(1, 0, s), v.slice(1, L + s, L + e)}, 1);
    noisy.push_back(attention(q.slice(1, L + s, L + e), kk, vv));
  }
  clean.insert(clean.end(), noisy.begin(), noisy.end());
  return torch::cat(clean, 1);
}

torch::Tensor naive_attention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, const torch::Tensor& mask) {
  auto qh = q.permute({0, 2, 1, 3}), kh = k.permute({0, 2, 1, 3}), vh = v.permute({0, 2, 1, 3});
  auto s = torch::matmul(qh, kh.transpose(-1, -2)) / std::sqrt(static_cast<double>(q.size(3)));
  if (mask.defined()) s = s.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(s, -1), vh).permute({0, 2, 1, 3});
}

}  // namespace causvid::models
