// bench/bench_util.h: timing helpers shared by the benchmarks.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace causvid::bench {

// Median wall time in seconds of `reps` runs after `warmup` runs.
inline double time_median(const std::function<void()>& fn, int reps = 3, int warmup = 1) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto a = std::chrono::steady_clock::now();
    fn();
    auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Waits for queued device work (CUDA kernels are asynchronous); a no-op on CPU.
inline void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

// GFLOP/s of an [m,k] x [k,n] matmul in `dtype` on `dev` (median of `reps`).
inline double gemm_gflops(int64_t m, int64_t k, int64_t n, torch::Dtype dtype = torch::kFloat32,
                          int reps = 3, torch::Device dev = torch::kCPU) {
  torch::NoGradGuard ng;
  auto a = torch::randn({m, k}).to(dev, dtype), b = torch::randn({k, n}).to(dev, dtype);
  double s = time_median([&] {
    auto c = torch::mm(a, b);
    sync(dev);
  }, reps, 1);
  return 2.0 * m * k * n / s / 1e9;
}

// The GEMM roof of `dev`: GFLOP/s of an n x n x n matmul in `dtype`, n = 2048 on a CPU and
// 8192 on a GPU (enough to fill it).
inline int64_t gemm_roof_size(torch::Device dev) { return dev.is_cuda() ? 8192 : 2048; }
inline double gemm_roof_gflops(torch::Dtype dtype, torch::Device dev = torch::kCPU) {
  const int64_t n = gemm_roof_size(dev);
  return gemm_gflops(n, n, n, dtype, 3, dev);
}

}  // namespace causvid::bench
