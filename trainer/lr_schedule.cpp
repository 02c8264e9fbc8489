// trainer/lr_schedule.cpp: see lr_schedule.h.
#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace causvid::trainer {

LrSchedule LrSchedule::from_config(const core::Config& c) {
  LrSchedule s;
  s.kind = c.lr_schedule;
  s.warmup_steps = c.lr_warmup_steps;
  if (c.lr_schedule == "wsd")
    s.decay_steps = std::max<int64_t>(1, std::llround(c.lr_decay_fraction * double(c.max_iters)));
  s.max_iters = c.max_iters;
  s.min_ratio = c.lr_min_ratio;
  return s;
}

double LrSchedule::factor(int64_t step) const {
  if (step < warmup_steps) return double(step + 1) / double(warmup_steps);
  if (kind == "cosine") {
    const double span = double(std::max<int64_t>(max_iters - warmup_steps, 1));
    const double p = std::clamp(double(step - warmup_steps) / span, 0.0, 1.0);
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + std::cos(M_PI * p));
  }
  if (kind == "wsd") {
    const int64_t start = max_iters - decay_steps;
    if (step < start) return 1.0;
    const double p = std::clamp(double(step - start) / double(std::max<int64_t>(decay_steps, 1)), 0.0, 1.0);
    return 1 - (1 - min_ratio) * p;
  }
  return 1.0;
}

std::string LrSchedule::describe() const {
  std::ostringstream o;
  o << "lr schedule " << kind;
  if (warmup_steps) o << ", warm-up " << warmup_steps << " steps";
  if (kind == "cosine") o << ", cosine to " << min_ratio << " x lr at step " << max_iters;
  if (kind == "wsd")
    o << ", linear decay to " << min_ratio << " x lr over steps " << max_iters - decay_steps
      << ".." << max_iters;
  return o.str();
}

}  // namespace causvid::trainer
