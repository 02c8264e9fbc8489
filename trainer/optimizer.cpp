// trainer/optimizer.cpp: see optimizer.h.
#include "trainer/optimizer.h"

#include <cmath>

namespace causvid::trainer {

ShardedAdamW::ShardedAdamW(std::vector<ShardedModule*> modules, AdamWOptions opts)
    : modules_(std::move(modules)), opts_(opts) {
  TORCH_CHECK(opts_.lr >= 0, "lr: got ", opts_.lr, ", want >= 0");
  TORCH_CHECK(opts_.beta1 >= 0 && opts_.beta1 < 1, "beta1: got ", opts_.beta1, ", want [0, 1)");
  TORCH_CHECK(opts_.beta2 >= 0 && opts_.beta2 < 1, "beta2: got ", opts_.beta2, ", want [0, 1)");
  TORCH_CHECK(opts_.eps >= 0, "eps: got ", opts_.eps, ", want >= 0");
  TORCH_CHECK(opts_.weight_decay >= 0, "weight_decay: got ", opts_.weight_decay, ", want >= 0");
  for (auto* m : modules_) {
    TORCH_CHECK(m && m->options().trainable, "ShardedAdamW: module is frozen or null");
    state_.emplace_back(m->units().size());
  }
}

double ShardedAdamW::grad_norm() {
  // Sum of squares per shard group; modules may use different groups (no_shard vs full),
  // so each module's partial sum is reduced in its own shard group (replicas hold equal
  // shards and must not be counted twice).
  double total = 0;
  for (auto* m : modules_) {
    auto sq = torch::zeros({1}, torch::TensorOptions(torch::kFloat64).device(m->device()));
    for (auto& u : m->units_)
      if (u.grad.defined()) sq += u.grad.to(torch::kFloat64).pow(2).sum();
    m->shard_group().all_reduce(sq, "sum");
    total += sq.item<double>();
  }
  return std::sqrt(total);
}

double ShardedAdamW::clip_grad_norm(double max_norm) {
  TORCH_CHECK(max_norm > 0, "grad_clip: got ", max_norm, ", want > 0");
  const double norm = grad_norm();
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (auto* m : modules_)
      for (auto& u : m->units_)
        if (u.grad.defined()) u.grad.mul_(coef);
  return norm;
}

void ShardedAdamW::step() {
  torch::NoGradGuard ng;
  ++step_;
  const double b1 = opts_.beta1, b2 = opts_.beta2, lr = this->lr();
  for (size_t mi = 0; mi < modules_.size(); ++mi) {
    auto& units = modules_[mi]->units_;
    for (size_t ui = 0; ui < units.size(); ++ui) {
      auto& u = units[ui];
      if (!u.grad.defined()) continue;
      auto& st = state_[mi][ui];
      if (!st.exp_avg.defined()) {
        st.exp_avg = torch::zeros_like(u.shard);
        st.exp_avg_sq = torch::zeros_like(u.shard);
      }
      st.step += 1;
      const double bc1 = 1 - std::pow(b1, double(st.step));
      const double bc2 = 1 - std::pow(b2, double(st.step));
      u.shard.mul_(1 - lr * opts_.weight_decay);
      st.exp_avg.lerp_(u.grad, 1 - b1);
      st.exp_avg_sq.mul_(b2).addcmul_(u.grad, u.grad, 1 - b2);
      auto denom = (st.exp_avg_sq.sqrt() / std::sqrt(bc2)).add_(opts_.eps);
      u.shard.addcdiv_(st.exp_avg, denom, -lr / bc1);
    }
    modules_[mi]->after_step();
  }
}

void ShardedAdamW::zero_grad() {
  for (auto* m : modules_) m->zero_grad();
}

int64_t ShardedAdamW::state_bytes() const {
  int64_t b = 0;
  for (const auto& ms : state_)
    for (const auto& s : ms)
      if (s.exp_avg.defined()) b += (s.exp_avg.numel() + s.exp_avg_sq.numel()) * 4;
  return b;
}

}  // namespace causvid::trainer
