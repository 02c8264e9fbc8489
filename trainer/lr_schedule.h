// trainer/lr_schedule.h: the learning-rate schedule of a run (config keys lr_schedule,
// lr_warmup_steps, lr_decay_fraction, lr_min_ratio): a factor on every optimizer's lr (the
// generator's lr and the critic's lr_critic alike), a function of the update's step only, so
// a resumed run follows the same curve as an uninterrupted one.
//   warm-up (every schedule): factor = (step + 1) / lr_warmup_steps for step < lr_warmup_steps
//   constant: 1 (CausVid, Self-Forcing)
//   cosine:   min + (1 - min) (1 + cos(pi p)) / 2, p = (step - warmup) / (max_iters - warmup)
//   wsd:      1 until max_iters - D, then linear to min at max_iters, where
//             D = round(lr_decay_fraction * max_iters) (at least 1)
// with min = lr_min_ratio and step = the updates done before this one (0-based).
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"

namespace causvid::trainer {

struct LrSchedule {
  std::string kind = "constant";  // constant | cosine | wsd
  int64_t warmup_steps = 0, decay_steps = 0, max_iters = 0;
  double min_ratio = 0.0;

  static LrSchedule from_config(const core::Config& c);
  double factor(int64_t step) const;
  bool is_constant() const { return kind == "constant" && warmup_steps == 0; }
  std::string describe() const;  // one line for the log
};

}  // namespace causvid::trainer
