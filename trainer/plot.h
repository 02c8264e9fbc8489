// trainer/plot.h: the raster plotter behind loss_curves.png (MetricsLog::write_plot). One panel
// per series with a title (the series name), axes with tick values, axis labels ("step",
// "loss") and a legend (raw values, running mean), drawn with a built-in 5x7 bitmap font into
// an RGB uint8 image, so the PNG needs nothing beyond LibTorch and data::encode_png.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace causvid::trainer {

using Series = std::vector<std::pair<int64_t, double>>;  // (step, value)

// Layout of one panel, in pixels. The plot area is inset by the margins, which hold the
// title (top), tick labels and axis labels (left, bottom).
struct PlotLayout {
  int width = 720;
  int panel_height = 200;
  int margin_left = 64, margin_right = 16, margin_top = 30, margin_bottom = 34;
  int num_ticks = 5;           // per axis, ends included
  double mean_momentum = 0.9;  // running mean: m = momentum * m + (1 - momentum) * v
};

// Colours (RGB) of the drawing, exposed for tests.
struct PlotColors {
  static constexpr uint8_t kText[3] = {30, 30, 30};
  static constexpr uint8_t kAxis[3] = {90, 90, 90};
  static constexpr uint8_t kGrid[3] = {228, 228, 228};
  static constexpr uint8_t kRaw[3] = {170, 200, 240};
  static constexpr uint8_t kMean[3] = {20, 60, 160};
};

// [3, H, W] uint8, one panel per (name, series) top to bottom, H = panels * panel_height.
// Series must be non-empty.
torch::Tensor render_loss_plot(const std::vector<std::pair<std::string, Series>>& panels,
                               const PlotLayout& layout = {});

// Width in pixels of `text` at `scale` in the built-in font (6 px per character at scale 1).
int text_width(const std::string& text, int scale = 1);

}  // namespace causvid::trainer
