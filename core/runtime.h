// core/runtime.h: RuntimeContext, the explicit bundle of device, dtypes, seed and output
// directory that stages, models and pipelines receive (torchtitan's ParallelDims idea:
// no globals). init_process() is called once by every entry point (binary and tests).
#pragma once

#include <torch/torch.h>

#include <string>

namespace causvid::core {

struct RuntimeContext {
  torch::Device device = torch::kCPU;
  torch::ScalarType param_dtype = torch::kFloat32;
  torch::ScalarType compute_dtype = torch::kFloat32;
  int64_t seed = 0;
  int rank = 0;
  int world_size = 1;
  std::string out_dir;
};

// Sets LibTorch's intra-op thread count to the machine's cores (LibTorch may default to 1),
// unless CAUSVID_NUM_THREADS or OMP_NUM_THREADS says otherwise. Returns the count.
int init_threads();

// Parses "cpu", "cuda", "cuda:1"; a CUDA device on a CPU-only build is a clear error.
torch::Device parse_device(const std::string& s);

}  // namespace causvid::core
