// trainer/metrics.h: what people look at instead of a wandb account. One JSON line per step
// in metrics.jsonl ({"step": N, "<name>": value, ...}), a PNG of the loss curves, and
// TensorBoard event files beside them (scalars per step, the sample sheets as images:
// `tensorboard --logdir <output_path>`).
// On resume the file is cut back to the resumed step, so a crash after the last checkpoint
// leaves no duplicate steps.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace causvid::trainer {

class MetricsLog {
 public:
  // Only `writer` ranks touch the file; lines with step > start_step are dropped.
  MetricsLog(std::string path, bool writer, int64_t start_step);
  ~MetricsLog();
  void append(int64_t step, const std::map<std::string, double>& values);
  // An image for TensorBoard (an encoded PNG of height x width RGB).
  void image(const std::string& tag, int64_t step, const std::string& png, int height, int width);
  // One panel per series whose name ends in "_loss" (top to bottom in name order), each with
  // its own y range, the raw values in a light colour and a running mean in a dark one, a
  // title, tick values, axis labels and a legend (trainer/plot.h).
  void write_plot(const std::string& png_path) const;
  const std::map<std::string, std::vector<std::pair<int64_t, double>>>& series() const {
    return series_;
  }

 private:
  std::string path_;
  bool writer_;
  std::unique_ptr<class EventWriter> tb_;
  std::map<std::string, std::vector<std::pair<int64_t, double>>> series_;
};

}  // namespace causvid::trainer
