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
  std::vector<std::string> names;
  for (const auto& kv : series_)
    if (kv.first.size() > 5 && kv.first.compare(kv.first.size() - 5, 5, "_loss") == 0 &&
        !kv.second.empty())
      names.push_back(kv.first);
  if (names.empty()) return;
  const int W = 640, PH = 160, pad = 8;
  const int H = static_cast<int>(names.size()) * PH;
  auto img = torch::full({3, H, W}, 255, torch::kUInt8);
  auto a = img.accessor<uint8_t, 3>();
  auto put = [&](int x, int y, const uint8_t* rgb) {
    if (x < 0 || y < 0 || x >= W || y >= H) return;
    for (int c = 0; c < 3; ++c) a[c][y][x] = rgb[c];
  };
  auto line = [&](int x0, int y0, int x1, int y1, const uint8_t* rgb) {
    const int n = std::max(std::abs(x1 - x0), std::abs(y1 - y0)) + 1;
    for (int i = 0; i <= n; ++i)
      put(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, rgb);
  };
  const uint8_t axis[3] = {120, 120, 120}, light[3] = {170, 200, 240}, dark[3] = {20, 60, 160};
  for (size_t p = 0; p < names.size(); ++p) {
    const auto& s = series_.at(names[p]);
    const int top = static_cast<int>(p) * PH + pad, bottom = (static_cast<int>(p) + 1) * PH - pad;
    const int left = pad, right = W - pad;
    line(left, bottom, right, bottom, axis);
    line(left, top, left, bottom, axis);
    double lo = s[0].second, hi = s[0].second;
    for (const auto& v : s) lo = std::min(lo, v.second), hi = std::max(hi, v.second);
    if (hi - lo < 1e-12) hi = lo + 1e-12;
    const int64_t s0 = s.front().first, s1 = std::max(s.back().first, s0 + 1);
    auto X = [&](int64_t st) { return left + static_cast<int>((right - left) * (st - s0) / double(s1 - s0)); };
    auto Y = [&](double v) { return bottom - static_cast<int>((bottom - top) * (v - lo) / (hi - lo)); };
    double mean = s[0].second;
    int px = X(s[0].first), py = Y(s[0].second), mx = px, my = py;
    for (size_t i = 1; i < s.size(); ++i) {
      const int x = X(s[i].first), y = Y(s[i].second);
      line(px, py, x, y, light);
      px = x, py = y;
    }
    for (size_t i = 1; i < s.size(); ++i) {
      mean = 0.9 * mean + 0.1 * s[i].second;
      const int x = X(s[i].first), y = Y(mean);
      line(mx, my, x, y, dark);
      mx = x, my = y;
    }
  }
  data::write_png(png, img);
}

}  // namespace causvid::trainer
