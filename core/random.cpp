// core/random.cpp: see random.h.
#include "core/random.h"

#include <sstream>

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

torch::Tensor GeneratorSource::randn(at::IntArrayRef shape, const torch::TensorOptions& opts) {
  return core::randn(shape, gen_, opts);
}

torch::Tensor GeneratorSource::rand(at::IntArrayRef shape, const torch::TensorOptions& opts) {
  return core::rand(shape, gen_, opts);
}

torch::Tensor GeneratorSource::randint(int64_t low, int64_t high, at::IntArrayRef shape,
                                       const torch::TensorOptions& opts) {
  return core::randint(low, high, shape, gen_, opts);
}

ReplaySource::ReplaySource(std::vector<torch::Tensor> draws, std::string source)
    : draws_(std::move(draws)), source_(std::move(source)) {}

torch::Tensor ReplaySource::take(const std::string& call, at::IntArrayRef shape, bool integral) {
  TORCH_CHECK(next_ < draws_.size(), source_, ": draw ", next_, " (", call, " of shape ", shape,
              ") requested, but the recording holds only ", draws_.size(), " draws");
  const auto& d = draws_[next_];
  TORCH_CHECK(d.sizes() == shape, source_, ": draw ", next_, " is ", call, " of shape ", shape,
              " here, but the recorded draw has shape ", d.sizes());
  TORCH_CHECK(at::isFloatingType(d.scalar_type()) != integral, source_, ": draw ", next_, " is ",
              call, " of shape ", shape, " here, but the recorded draw is ", d.scalar_type());
  return draws_[next_++];
}

torch::Tensor ReplaySource::randn(at::IntArrayRef shape, const torch::TensorOptions& opts) {
  auto o = opts.has_dtype() ? opts : opts.dtype(torch::kFloat32);
  return take("randn", shape, false).to(o);
}

torch::Tensor ReplaySource::rand(at::IntArrayRef shape, const torch::TensorOptions& opts) {
  auto o = opts.has_dtype() ? opts : opts.dtype(torch::kFloat32);
  return take("rand", shape, false).to(o);
}

torch::Tensor ReplaySource::randint(int64_t low, int64_t high, at::IntArrayRef shape,
                                    const torch::TensorOptions& opts) {
  const size_t i = next_;
  std::ostringstream call;
  call << "randint(" << low << ", " << high << ")";
  auto d = take(call.str(), shape, true);
  TORCH_CHECK(d.numel() == 0 || (d.min().item<int64_t>() >= low && d.max().item<int64_t>() < high),
              source_, ": draw ", i, " (", call.str(), ") holds values outside [", low, ", ",
              high, ")");
  return d.to(opts.has_dtype() ? opts : opts.dtype(torch::kLong));
}

void ReplaySource::check_all_used() const {
  TORCH_CHECK(next_ == draws_.size(), source_, ": the step made ", next_,
              " draws, but the recording holds ", draws_.size());
}

}  // namespace causvid::core
