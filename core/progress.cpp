// core/progress.cpp: see progress.h.
#include "core/progress.h"

#include <absl/strings/str_format.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cmath>

#include "core/log.h"

namespace causvid::core {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

Progress::Progress(std::string label, int64_t total, double interval_s, bool quiet)
    : label_(std::move(label)), total_(total), interval_s_(interval_s), quiet_(quiet) {
  t0_ = last_ = now_s();
  tty_ = !quiet_ && ::isatty(2) && log_enabled(LogLevel::kInfo);
}

Progress::~Progress() {
  try {
    finish();
  } catch (...) {
  }
}

std::string Progress::line(const std::string& extra) const {
  const double elapsed = now_s() - t0_;
  const double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  std::string out = label_ + " " + std::to_string(done_);
  if (total_ > 0) {
    out += absl::StrFormat("/%d (%.1f%%)", total_, 100.0 * done_ / total_);
  }
  out += rate >= 1.0 || rate == 0.0 ? absl::StrFormat(" %.2f it/s", rate)
                                    : absl::StrFormat(" %.2f s/it", 1.0 / rate);
  if (total_ > 0 && done_ < total_ && rate > 0) {
    out += ", eta " + format_duration((total_ - done_) / rate);
  } else {
    out += ", elapsed " + format_duration(elapsed);
  }
  if (!extra.empty()) out += " " + extra;
  return out;
}

void Progress::add(int64_t n, const std::string& extra) {
  done_ += n;
  if (quiet_) return;
  const double t = now_s();
  if (t - last_ < (tty_ ? 0.1 : interval_s_)) return;
  last_ = t;
  if (tty_) {
    std::fprintf(stderr, "\r%-110s", line(extra).c_str());
    std::fflush(stderr);
    drawn_ = true;
  } else {
    LOG_INFO("%s", line(extra));
  }
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  if (drawn_) std::fprintf(stderr, "\n");
  if (!quiet_) LOG_INFO("%s", line(extra));
}

}  // namespace causvid::core
