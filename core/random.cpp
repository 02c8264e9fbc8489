// core/random.cpp: see random.h.
#include "core/random.h"

namespace causvid::core {
namespace {

// Draws on the generator's device with opts' dtype, then moves to opts' device.
template <typename Draw>
torch::Tensor draw_then_move(at::Generator& gen, const torch::TensorOptions& opts, Draw draw) {
  const auto gdev = gen.device();
  auto t = draw(opts.device(gdev));
  if (opts.has_device() && opts.device() != gdev) t = t.to(opts.device(), /*non_blocking=*/false);
  return t;
}

}  // namespace

torch::Tensor randn(at::IntArrayRef shape, at::Generator& gen, const torch::TensorOptions& opts) {
  return draw_then_move(gen, opts, [&](const torch::TensorOptions& o) {
    return at::randn(shape, gen, o);
  });
}

torch::Tensor randn_like(const torch::Tensor& x, at::Generator& gen) {
  return randn(x.sizes(), gen, x.options());
}

torch::Tensor rand(at::IntArrayRef shape, at::Generator& gen, const torch::TensorOptions& opts) {
  return draw_then_move(gen, opts, [&](const torch::TensorOptions& o) {
    return at::rand(shape, gen, o);
  });
}

torch::Tensor randint(int64_t low, int64_t high, at::IntArrayRef shape, at::Generator& gen,
                      const torch::TensorOptions& opts) {
  return draw_then_move(gen, opts, [&](const torch::TensorOptions& o) {
    return at::randint(low, high, shape, gen, o);
  });
}

}  // namespace causvid::core
