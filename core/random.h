// core/random.h: the one rule for random draws. Every draw of the framework comes from an
// at::Generator passed in explicitly (never the global one) and lands on the device the caller
// asks for. A CPU generator draws on the CPU and the result is copied to the target device, so
// a seed means the same numbers on CPU and on CUDA (bit-identical noise, timesteps and
// indices on every device; the cost is one host-to-device copy per draw, small next to a DiT
// forward). A CUDA generator draws directly on its device (faster for huge draws; its stream
// differs from the CPU's). The trainer, samplers and generate use CPU generators.
#pragma once

#include <torch/torch.h>

namespace causvid::core {

// N(0, 1) of `shape`, float32 unless opts says otherwise, on opts' device.
torch::Tensor randn(at::IntArrayRef shape, at::Generator& gen,
                    const torch::TensorOptions& opts = {});
torch::Tensor randn_like(const torch::Tensor& x, at::Generator& gen);
// U[0, 1) and integers in [low, high), on opts' device.
torch::Tensor rand(at::IntArrayRef shape, at::Generator& gen, const torch::TensorOptions& opts = {});
torch::Tensor randint(int64_t low, int64_t high, at::IntArrayRef shape, at::Generator& gen,
                      const torch::TensorOptions& opts = torch::kLong);

}  // namespace causvid::core
