// models/common/rope.cpp: see rope.h.
#include "models/common/rope.h"

namespace causvid::models {

RopeTable rope_table(int64_t head_dim, int64_t F, int64_t h, int64_t w, int64_t frame_offset,
                     const torch::Device& device) {
  const int64_t P = head_dim / 2;
  const int64_t Ph = P / 3, Pw = P / 3, Pf = P - 2 * (P / 3);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto omega = [&](int64_t Pa) {  // 10000^(-j/Pa), as rope_params: 1/theta^(2j/(2Pa))
    return 1.0 / torch::pow(10000.0, torch::arange(0, Pa, f64).div(static_cast<double>(Pa)));
  };
  auto fi = torch::arange(frame_offset, frame_offset + F, f64);
  auto hi = torch::arange(0, h, f64);
  auto wi = torch::arange(0, w, f64);
  auto af = torch::outer(fi, omega(Pf)).view({F, 1, 1, Pf}).expand({F, h, w, Pf});
  auto ah = torch::outer(hi, omega(Ph)).view({1, h, 1, Ph}).expand({F, h, w, Ph});
  auto aw = torch::outer(wi, omega(Pw)).view({1, 1, w, Pw}).expand({F, h, w, Pw});
  auto ang = torch::cat({af, ah, aw}, -1).reshape({F * h * w, P});
  return {torch::complex(torch::cos(ang).to(torch::kFloat32), torch::sin(ang).to(torch::kFloat32))
              .to(device)};
}

torch::Tensor apply_rope(const torch::Tensor& x, const RopeTable& t) {
  const int64_t B = x.size(0), L = x.size(1), N = x.size(2), K = x.size(3);
  TORCH_CHECK(t.rot.size(0) == L && t.rot.size(1) == K / 2, "apply_rope: table ", t.rot.sizes(),
              " does not fit x ", x.sizes());
  // One complex multiply (the reference's view_as_complex(x) * freqs): one op forward and one
  // in backward, in complex64 (complex128 in the reference); bf16 inputs go through float32.
  auto xc = torch::view_as_complex(x.to(torch::kFloat32).reshape({B, L, N, K / 2, 2}));
  auto r = torch::view_as_real(xc * t.rot.view({1, L, 1, K / 2}));
  return r.view({B, L, N, K}).to(x.scalar_type());
}

}  // namespace causvid::models
