// bench/t5_bench.cpp: `bench t5`, umT5 encoder time per prompt for a small config, and the
// umT5-XXL time estimated from its FLOP count and a GEMM rate measured in the same run.
// Baseline: a plain [L, dim] x [dim, dim_ffn] matmul; the encoder's achieved rate is
// printed as a ratio of it, and the XXL estimate uses both the raw XXL-shaped GEMM rate
// (lower bound) and that rate scaled by the small config's measured efficiency.
#include <cstdio>

#include "bench/bench_util.h"
#include "bench/benches.h"
#include "models/t5/umt5.h"

namespace causvid::bench {

namespace {

double seconds_of(const std::function<void()>& fn, int iters) {
  return time_median(fn, iters, 1);
}

// Matmul FLOPs of one encoder forward over `l` tokens (norms, softmax, GELU ignored).
double encoder_flops(const models::UMT5Config& c, int64_t l) {
  double per_layer = 2.0 * l * c.dim * c.dim_attn * 4    // q, k, v, o
                     + 2.0 * l * c.dim * c.dim_ffn * 3   // gate, fc1, fc2
                     + 2.0 * 2.0 * l * l * c.dim_attn;   // q.k^T and attn.v
  return per_layer * c.num_layers;
}

double gemm_rate(int64_t m, int64_t k, int64_t n, int iters) {  // FLOP/s
  return gemm_gflops(m, k, n, torch::kFloat32, iters) * 1e9;
}

}  // namespace

int bench_t5(const T5BenchArgs& a) {
  const auto& dim = a.dim;
  const auto& ffn = a.dim_ffn;
  const auto& heads = a.heads;
  const auto& layers = a.layers;
  const auto& text_len = a.text_len;
  const auto& valid = a.valid;
  const auto& batch = a.batch;
  const auto& iters = a.iters;
  const int it = iters;
  const int64_t l = text_len;
  const int64_t b = batch;
  const int64_t nv = std::min<int64_t>(valid, l);

  models::UMT5Config small;
  small.vocab = 32128;
  small.dim = small.dim_attn = dim;
  small.dim_ffn = ffn;
  small.num_heads = heads;
  small.num_layers = layers;
  small.validate();
  const auto xxl = models::UMT5Config::xxl();

  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  models::UMT5Encoder enc(small);
  enc->eval();
  auto ids = torch::randint(3, small.vocab, {b, l}, torch::kInt64);
  auto mask = torch::zeros({b, l}, torch::kInt64);
  mask.narrow(1, 0, nv).fill_(1);

  const double gemm_small = gemm_rate(l * b, small.dim, small.dim_ffn, it);
  const double gemm_xxl = gemm_rate(l, xxl.dim, xxl.dim_ffn, std::max(1, it / 2));
  const double t_small = seconds_of([&] { (void)enc->forward(ids, mask); }, it) / b;
  // What UMT5TextEncoder runs by default: only the valid positions (trim_padding).
  auto ids_v = ids.narrow(1, 0, nv), mask_v = mask.narrow(1, 0, nv);
  const double t_trim = seconds_of([&] { (void)enc->forward(ids_v, mask_v); }, it) / b;
  const double f_small = encoder_flops(small, l);
  const double rate_small = f_small / t_small;
  const double eff = rate_small / gemm_small;
  const double f_xxl = encoder_flops(xxl, l);

  std::printf("threads %d, text_len %lld, batch %lld\n", torch::get_num_threads(),
              (long long)l, (long long)b);
  std::printf("GEMM baseline  [%lld x %lld] x [%lld x %lld]: %.1f GFLOP/s\n",
              (long long)(l * b), (long long)small.dim, (long long)small.dim,
              (long long)small.dim_ffn, gemm_small / 1e9);
  std::printf("GEMM XXL-shape [%lld x %lld] x [%lld x %lld]: %.1f GFLOP/s\n", (long long)l,
              (long long)xxl.dim, (long long)xxl.dim, (long long)xxl.dim_ffn, gemm_xxl / 1e9);
  std::printf("small encoder %s (%.1fM params): %.4f s/prompt, %.2f GFLOP/prompt, "
              "%.1f GFLOP/s = %.2fx of the GEMM baseline\n",
              small.str().c_str(), small.num_params() / 1e6, t_small, f_small / 1e9,
              rate_small / 1e9, eff);
  std::printf("small encoder, trimmed to the %lld valid tokens: %.4f s/prompt = %.2fx faster "
              "than full %lld\n", (long long)nv, t_trim, t_small / t_trim, (long long)l);
  std::printf("umT5-XXL %s (%.2fB params): %.1f GFLOP/prompt\n", xxl.str().c_str(),
              xxl.num_params() / 1e9, f_xxl / 1e9);
  std::printf("  estimate at the XXL GEMM rate:              %.1f s/prompt\n", f_xxl / gemm_xxl);
  std::printf("  estimate scaled by the small efficiency %.2f: %.1f s/prompt\n", eff,
              f_xxl / (gemm_xxl * std::min(eff, 1.0)));
  const double f_xxl_trim = encoder_flops(xxl, nv);
  std::printf("  trimmed to %lld tokens: %.1f GFLOP/prompt, %.1f s/prompt at the XXL GEMM rate\n",
              (long long)nv, f_xxl_trim / 1e9, f_xxl_trim / gemm_xxl);
  std::printf("  (fp32 weights %.1f GiB, bf16 %.1f GiB)\n", xxl.num_params() * 4.0 / (1 << 30),
              xxl.num_params() * 2.0 / (1 << 30));
  return 0;
}

}  // namespace causvid::bench
