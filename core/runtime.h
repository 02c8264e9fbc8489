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

// Once per process, before any work: ignores SIGXFSZ, so that a file-size limit (ulimit -f, a
// quota) makes writes fail with EFBIG and our writers report it and clean up as for a full
// disk, instead of the process dying silently; then init_threads(). Returns the thread count.
int init_process();

// The one device choice of a process, made before its process group exists:
//   "cpu"    -> cpu
//   "cuda"   -> cuda:LOCAL_RANK (one GPU per local rank, as torchrun / SLURM lay them out)
//   "cuda:N" -> cuda:N
//   "auto"   -> "cuda" when a CUDA device is visible, else "cpu"
// Asking for CUDA where there is none, a local rank without a GPU of its own, or an unknown
// string is an error naming the `device` setting; never a silent fall-back to CPU. A CUDA
// result is also made the current device of the process.
torch::Device resolve_device(const std::string& spec, int local_rank = 0,
                             int local_world_size = 1);
// The same choice for a machine with `visible_gpus` CUDA devices, without touching CUDA (the
// rules above, testable anywhere).
torch::Device choose_device(const std::string& spec, int local_rank, int local_world_size,
                            int visible_gpus);

// Number of visible CUDA devices (0 on machines without a GPU or driver).
int cuda_device_count();

// Parses a dtype flag: "fp32"/"float32", "bf16"/"bfloat16", "fp16"/"float16".
torch::ScalarType parse_dtype(const std::string& s, const std::string& what = "dtype");
std::string dtype_name(torch::ScalarType t);

}  // namespace causvid::core
