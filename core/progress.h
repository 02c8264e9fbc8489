// core/progress.h: a progress reporter for long phases that otherwise print nothing
// (evaluation sets, VAE encode batches, preprocessing, ODE-pair generation). Counts done of
// total and logs one line at most every `interval_s` seconds, plus one at the end:
//   [cv] ... I progress.cpp:NN vae-encode 120/480 (25.0%) 3.2 it/s, eta 1m52s
// On a terminal (stderr a tty) the line is redrawn in place on every add() (at most ten times
// a second) and ended at finish(); otherwise it is logged. Thread-compatible, not
// thread-safe: one reporter per loop. Rank-aware through the logger (only ranks that log
// print). quiet = no output at all (the counts still advance).
#pragma once

#include <cstdint>
#include <string>

namespace causvid::core {

class Progress {
 public:
  // total <= 0: unknown (no percentage, no ETA).
  Progress(std::string label, int64_t total, double interval_s = 10.0, bool quiet = false);
  ~Progress();  // logs the final line if it was not logged yet (finish())
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Adds `n` done items; logs when interval_s has passed since the last line. `extra` is
  // appended to the line (e.g. the current file).
  void add(int64_t n = 1, const std::string& extra = "");
  // Logs the final line (count, rate, elapsed) once.
  void finish(const std::string& extra = "");

  int64_t done() const { return done_; }
  int64_t total() const { return total_; }
  // The line that would be logged now (used by tests and by finish()).
  std::string line(const std::string& extra = "") const;

 private:
  std::string label_;
  int64_t total_;
  double interval_s_;
  bool quiet_;
  int64_t done_ = 0;
  double t0_, last_;
  bool finished_ = false;
  bool tty_ = false;   // redraw in place on stderr
  bool drawn_ = false;  // a redrawn line is open (needs its newline)
};

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace causvid::core
