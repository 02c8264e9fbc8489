// inference/step_list.cpp: see step_list.h.
#include "inference/step_list.h"

#include "models/wan/flow_match.h"

namespace causvid::inference {

torch::Tensor training_step_list(const core::Config& c) {
  std::vector<int64_t> v(c.denoising_step_list.begin(), c.denoising_step_list.end());
  TORCH_CHECK(!v.empty(), c.source, ": key 'denoising_step_list': want at least one step");
  auto list = torch::tensor(v, torch::kLong);
  if (c.warp_denoising_step)
    return models::warp_denoising_steps(list,
                                        models::FlowMatchScheduler::wan_training(c.generator_scheduler_shift()));
  return list.to(torch::kFloat32);
}

std::vector<double> sampling_step_list(const core::Config& c) {
  auto t = training_step_list(c).to(torch::kFloat64).contiguous();
  std::vector<double> out(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  if (out.size() > 1 && out.back() == 0.0) out.pop_back();
  TORCH_CHECK(!out.empty() && out.back() != 0.0, c.source,
              ": key 'denoising_step_list': want at least one non-zero step");
  return out;
}

}  // namespace causvid::inference
