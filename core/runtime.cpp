// core/runtime.cpp: see runtime.h.
#include "core/runtime.h"

#include <cstdlib>
#include <thread>

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

torch::Device parse_device(const std::string& s) {
  TORCH_CHECK(s == "cpu" || s.rfind("cuda", 0) == 0, "device: got '", s,
              "', want cpu, cuda or cuda:N");
  if (s.rfind("cuda", 0) == 0) {
    TORCH_CHECK(torch::cuda::is_available(), "device: '", s,
                "' requested but this LibTorch build or machine has no CUDA");
  }
  return torch::Device(s);
}

}  // namespace causvid::core
