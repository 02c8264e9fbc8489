// core/dist_cuda.cpp: NCCL process groups (compiled only with a CUDA LibTorch whose headers
// have ProcessGroupNCCL; see CMakeLists.txt). One device per local rank: the current device is
// set to local_rank before the communicator exists.
#include "core/dist.h"

#if defined(CAUSVID_WITH_NCCL)
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

namespace causvid::core {

c10::intrusive_ptr<c10d::Backend> make_nccl_group(c10::intrusive_ptr<c10d::Store> store,
                                                       int rank, int size,
                                                       std::chrono::milliseconds timeout,
                                                       int local_rank) {
  TORCH_CHECK(local_rank < int(c10::cuda::device_count()), "LOCAL_RANK: got ", local_rank,
              ", but only ", c10::cuda::device_count(), " CUDA devices are visible");
  c10::cuda::set_device(c10::DeviceIndex(local_rank));
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, opts);
}

}  // namespace causvid::core
#endif
