// core/runtime.cpp: see runtime.h.
#include "core/runtime.h"

#include <csignal>
#include <cstdlib>
#include <thread>

#if defined(CAUSVID_WITH_CUDA)
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace causvid::core {

int init_threads() {
  int n = 0;
  if (const char* v = std::getenv("CAUSVID_NUM_THREADS")) n = std::atoi(v);
  if (n <= 0) {
    if (const char* v = std::getenv("OMP_NUM_THREADS")) n = std::atoi(v);
  }
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  at::set_num_threads(n);
  return n;
}

int init_process() {
  std::signal(SIGXFSZ, SIG_IGN);
  return init_threads();
}

int cuda_device_count() {
#if defined(CAUSVID_WITH_CUDA)
  return static_cast<int>(c10::cuda::device_count());
#else
  return 0;
#endif
}

namespace {
bool is_cuda_spec(const std::string& s) { return s == "cuda" || s.rfind("cuda:", 0) == 0; }
}  // namespace

torch::Device choose_device(const std::string& spec, int local_rank, int local_world_size,
                            int n) {
  TORCH_CHECK(spec == "cpu" || spec == "auto" || is_cuda_spec(spec), "device: got '", spec,
              "', want auto, cpu, cuda or cuda:N");
  if (spec == "cpu" || (spec == "auto" && n == 0)) return torch::kCPU;
  TORCH_CHECK(n > 0, "device: '", spec, "' requested, but no CUDA device is visible (no GPU, "
              "no driver, or CUDA_VISIBLE_DEVICES hides them); use --device cpu");
  int index = local_rank;
  if (spec.rfind("cuda:", 0) == 0) {
    const std::string num = spec.substr(5);
    TORCH_CHECK(!num.empty() && num.size() < 6 &&
                    num.find_first_not_of("0123456789") == std::string::npos,
                "device: got '", spec, "', want cuda:N with N a GPU index");
    index = std::stoi(num);
    TORCH_CHECK(index < n, "device: '", spec, "' requested, but only ", n,
                " CUDA device(s) are visible");
  } else {
    TORCH_CHECK(local_rank < n, "device: '", spec, "' puts local rank ", local_rank,
                " on cuda:", local_rank, ", but only ", n, " CUDA device(s) are visible for ",
                local_world_size, " ranks on this node: start at most ", n,
                " ranks per node (--nproc-per-node) or use --device cpu");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::Device resolve_device(const std::string& spec, int local_rank, int local_world_size) {
  const auto d = choose_device(spec, local_rank, local_world_size, cuda_device_count());
#if defined(CAUSVID_WITH_CUDA)
  if (d.is_cuda()) c10::cuda::set_device(d.index());
#endif
  return d;
}

torch::ScalarType parse_dtype(const std::string& s, const std::string& what) {
  if (s == "fp32" || s == "float32" || s == "float") return torch::kFloat32;
  if (s == "bf16" || s == "bfloat16") return torch::kBFloat16;
  if (s == "fp16" || s == "float16" || s == "half") return torch::kFloat16;
  TORCH_CHECK(false, what, ": got '", s, "', want fp32, bf16 or fp16");
}

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "fp32";
    case torch::kBFloat16: return "bf16";
    case torch::kFloat16: return "fp16";
    default: return c10::toString(t);
  }
}

}  // namespace causvid::core
