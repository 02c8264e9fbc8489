// trainer/metrics.cpp: see metrics.h.
#include "trainer/metrics.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fs.h"
#include "data/image_io.h"
#include "trainer/plot.h"
#include "trainer/tensorboard.h"

namespace causvid::trainer {

MetricsLog::MetricsLog(std::string path, bool writer, int64_t start_step)
    : path_(std::move(path)), writer_(writer) {
  if (!writer_) return;
  std::string kept;
  if (core::file_exists(path_)) {
    std::istringstream in(core::read_file(path_));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const std::exception&) {
        continue;  // a torn last line
      }
      const int64_t step = j.value("step", int64_t{0});
      if (step > start_step) continue;
      kept += line + "\n";
      for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != "step" && it.value().is_number())
          series_[it.key()].push_back({step, it.value().get<double>()});
    }
  }
  core::write_file_atomic(path_, kept);
  const auto slash = path_.find_last_of('/');
  tb_ = std::make_unique<EventWriter>(slash == std::string::npos ? "." : path_.substr(0, slash));
}

MetricsLog::~MetricsLog() = default;

void MetricsLog::image(const std::string& tag, int64_t step, const std::string& png, int height,
                       int width) {
  if (tb_) tb_->image(tag, step, png, height, width);
}

void MetricsLog::append(int64_t step, const std::map<std::string, double>& values) {
  if (!writer_) return;
  nlohmann::json j;
  j["step"] = step;
  for (const auto& kv : values) {
    j[kv.first] = kv.second;
    series_[kv.first].push_back({step, kv.second});
  }
  std::ofstream f(path_, std::ios::app);
  f << j.dump() << "\n";
  if (tb_) {
    for (const auto& kv : values) tb_->scalar(kv.first, step, kv.second);
    tb_->flush();
  }
}

void MetricsLog::write_plot(const std::string& png) const {
  std::vector<std::pair<std::string, Series>> panels;
  for (const auto& kv : series_)
    if (kv.first.size() > 5 && kv.first.compare(kv.first.size() - 5, 5, "_loss") == 0 &&
        !kv.second.empty())
      panels.emplace_back(kv.first, kv.second);
  if (panels.empty()) return;
  data::write_png(png, render_loss_plot(panels));
}

}  // namespace causvid::trainer
