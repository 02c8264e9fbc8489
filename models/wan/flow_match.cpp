// models/wan/flow_match.cpp: see flow_match.h.
#include "models/wan/flow_match.h"

namespace causvid::models {

FlowMatchScheduler::FlowMatchScheduler(const FlowMatchOptions& opts, int64_t n) : opts_(opts) {
  set_timesteps(n);
}

FlowMatchScheduler FlowMatchScheduler::wan_training(double shift) {
  FlowMatchOptions o;
  o.shift = shift;
  o.sigma_min = 0.0;
  o.extra_one_step = true;
  FlowMatchScheduler s(o, 1000);
  s.set_timesteps(1000, 1.0, /*training=*/true);
  return s;
}

FlowMatchScheduler FlowMatchScheduler::wan_sampling(int64_t n, double shift) {
  FlowMatchOptions o;
  o.shift = shift;
  o.sigma_min = 0.0;
  o.extra_one_step = true;
  return FlowMatchScheduler(o, n);
}

void FlowMatchScheduler::set_timesteps(int64_t n, double strength, bool training) {
  TORCH_CHECK(n > 0, "num_inference_steps: got ", n, ", want > 0");
  const double start = opts_.sigma_min + (opts_.sigma_max - opts_.sigma_min) * strength;
  if (opts_.extra_one_step) {
    sigmas = torch::linspace(start, opts_.sigma_min, n + 1).slice(0, 0, n);
  } else {
    sigmas = torch::linspace(start, opts_.sigma_min, n);
  }
  if (opts_.inverse_timesteps) sigmas = torch::flip(sigmas, {0});
  sigmas = opts_.shift * sigmas / (1 + (opts_.shift - 1) * sigmas);
  if (opts_.reverse_sigmas) sigmas = 1 - sigmas;
  timesteps = sigmas * static_cast<double>(opts_.num_train_timesteps);
  if (training) {
    auto y = torch::exp(-2 * ((timesteps - n / 2.0) / static_cast<double>(n)).pow(2));
    auto ys = y - y.min();
    linear_timesteps_weights = ys * (static_cast<double>(n) / ys.sum());
  }
}

torch::Tensor FlowMatchScheduler::lookup(const torch::Tensor& t) const {
  auto tf = t.flatten().to(timesteps.device());
  if (!tf.is_floating_point()) tf = tf.to(torch::kFloat32);
  auto grid = timesteps.to(tf.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32);
  return torch::argmin((grid.unsqueeze(0) - tf.to(grid.scalar_type()).unsqueeze(1)).abs(), 1);
}

torch::Tensor FlowMatchScheduler::per_sample(const torch::Tensor& s, const torch::Tensor& like) const {
  // s [n] -> broadcastable over `like` whose leading dims flatten to n.
  const int64_t n = s.size(0);
  std::vector<int64_t> shape(like.sizes().begin(), like.sizes().end());
  int64_t lead = 1, k = 0;
  while (k < static_cast<int64_t>(shape.size()) && lead < n) lead *= shape[k++];
  TORCH_CHECK(lead == n, "scheduler: ", n, " timesteps do not match the leading dims of ",
              like.sizes());
  std::vector<int64_t> view(shape.begin(), shape.begin() + k);
  for (size_t i = k; i < shape.size(); ++i) view.push_back(1);
  return s.view(view);
}

torch::Tensor FlowMatchScheduler::sigma_at(const torch::Tensor& t) const {
  return sigmas.index_select(0, lookup(t));
}

torch::Tensor FlowMatchScheduler::add_noise(const torch::Tensor& x, const torch::Tensor& noise,
                                            const torch::Tensor& t) const {
  auto sigma = per_sample(sigma_at(t).to(x.device()), x);
  return ((1 - sigma) * x + sigma * noise).to(noise.scalar_type());
}

torch::Tensor FlowMatchScheduler::step(const torch::Tensor& out, const torch::Tensor& t,
                                       const torch::Tensor& sample, bool to_final) const {
  auto id = lookup(t);
  auto sigma = per_sample(sigmas.index_select(0, id).to(out.device()), out);
  const int64_t N = timesteps.size(0);
  if (to_final || (id + 1 >= N).any().item<bool>()) {
    const double last = (opts_.inverse_timesteps || opts_.reverse_sigmas) ? 1.0 : 0.0;
    return sample + out * (last - sigma);
  }
  auto sigma_next = per_sample(sigmas.index_select(0, id + 1).to(out.device()), out);
  return sample + out * (sigma_next - sigma);
}

torch::Tensor FlowMatchScheduler::training_weight(const torch::Tensor& t) const {
  TORCH_CHECK(linear_timesteps_weights.defined(),
              "training_weight: scheduler was not set with training=true");
  return linear_timesteps_weights.index_select(0, lookup(t));
}

torch::Tensor FlowMatchScheduler::x0_from_flow(const torch::Tensor& flow, const torch::Tensor& xt,
                                               const torch::Tensor& t) const {
  auto id = lookup(t.to(torch::kFloat64));
  auto sigma = per_sample(sigmas.to(torch::kFloat64).index_select(0, id).to(flow.device()), flow);
  return (xt.to(torch::kFloat64) - sigma * flow.to(torch::kFloat64)).to(flow.scalar_type());
}

torch::Tensor FlowMatchScheduler::flow_from_x0(const torch::Tensor& x0, const torch::Tensor& xt,
                                               const torch::Tensor& t) const {
  auto id = lookup(t.to(torch::kFloat64));
  auto sigma = per_sample(sigmas.to(torch::kFloat64).index_select(0, id).to(x0.device()), x0);
  return ((xt.to(torch::kFloat64) - x0.to(torch::kFloat64)) / sigma).to(x0.scalar_type());
}

torch::Tensor shift_timestep(const torch::Tensor& raw, double s, double min_step, double max_step,
                             int64_t num_train_timestep) {
  auto t = raw.to(torch::kFloat32);
  if (s > 1) {
    auto r = t / static_cast<double>(num_train_timestep);
    t = s * r / (1 + (s - 1) * r) * static_cast<double>(num_train_timestep);
  }
  return t.clamp(min_step, max_step);
}

torch::Tensor warp_denoising_steps(const torch::Tensor& list, const FlowMatchScheduler& g) {
  auto grid = torch::cat({g.timesteps.to(torch::kCPU), torch::zeros({1}, torch::kFloat32)});
  const int64_t T = g.options().num_train_timesteps;
  auto idx = T - list.to(torch::kInt64).to(torch::kCPU);
  TORCH_CHECK((idx >= 0).all().item<bool>() && (idx < grid.size(0)).all().item<bool>(),
              "denoising_step_list: values must lie in [0, ", T, "]");
  return grid.index_select(0, idx);
}

}  // namespace causvid::models
