// tests/trainer/metrics_test.cpp: MetricsLog's loss plot (trainer/plot.h): the PNG is written
// and carries a title, tick values, axis labels and a legend, not just two bare curves.
#include <gtest/gtest.h>

#include <cmath>

#include "core/fs.h"
#include "data/image_io.h"
#include "tests/test_util.h"
#include "trainer/metrics.h"
#include "trainer/plot.h"

namespace causvid {
namespace {

using testing::TempDir;
using trainer::PlotColors;
using trainer::PlotLayout;

// Pixels of colour `rgb` in img[:, y0:y1, x0:x1].
int64_t count_color(const torch::Tensor& img, int y0, int y1, int x0, int x1, const uint8_t* rgb) {
  auto region = img.slice(1, y0, y1).slice(2, x0, x1);
  auto match = torch::ones({y1 - y0, x1 - x0}, torch::kBool);
  for (int c = 0; c < 3; ++c) match &= region[c] == rgb[c];
  return match.sum().item<int64_t>();
}

TEST(Metrics, LossPlotHasTitleTicksLabelsAndLegend) {
  trainer::Series gen, critic;
  for (int64_t s = 0; s < 50; ++s) {
    gen.push_back({s * 10, 2.0 * std::exp(-0.05 * s) + 0.1 * std::sin(double(s))});
    critic.push_back({s * 10, 0.5 + 0.01 * s});
  }
  const PlotLayout L;
  auto img = trainer::render_loss_plot({{"critic_loss", critic}, {"generator_loss", gen}}, L);
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, 2 * L.panel_height, L.width}));
  const int right = L.width - L.margin_right;
  for (int p = 0; p < 2; ++p) {
    SCOPED_TRACE(p);
    const int y0 = p * L.panel_height, top = y0 + L.margin_top;
    const int bottom = y0 + L.panel_height - L.margin_bottom;
    // Title (scale 2, left of the plot area's top margin) and the legend (right of it).
    EXPECT_GT(count_color(img, y0, top, L.margin_left, L.margin_left + 150, PlotColors::kText),
              50);
    EXPECT_GT(count_color(img, y0, top, right - 200, right, PlotColors::kRaw), 20);
    EXPECT_GT(count_color(img, y0, top, right - 200, right, PlotColors::kMean), 20);
    EXPECT_GT(count_color(img, y0, top, right - 200, right, PlotColors::kText), 50);
    // Y tick values left of the axis, x tick values and the "step" label below it.
    EXPECT_GT(count_color(img, top, bottom, 0, L.margin_left - 4, PlotColors::kText), 60);
    EXPECT_GT(count_color(img, bottom + 2, y0 + L.panel_height, L.margin_left, right,
                          PlotColors::kText),
              80);
    // Both curves inside the plot area.
    EXPECT_GT(count_color(img, top, bottom + 1, L.margin_left, right + 1, PlotColors::kMean), 100);
  }
  // A label is drawn where asked: "step" at the bottom right of the first panel.
  const int bottom = L.panel_height - L.margin_bottom;
  EXPECT_GT(count_color(img, bottom + 18, bottom + 25, right - trainer::text_width("step"), right,
                        PlotColors::kText),
            20);
}

TEST(Metrics, WritePlotWritesThePngOfTheLossSeries) {
  TempDir dir;
  trainer::MetricsLog log(dir.file("metrics.jsonl"), /*writer=*/true, /*start_step=*/0);
  for (int64_t s = 1; s <= 20; ++s)
    log.append(s, {{"dmd_loss", 1.0 / s}, {"grad_norm", 3.0}, {"critic_loss", 0.1 * s}});
  const std::string png = dir.file("loss_curves.png");
  log.write_plot(png);
  ASSERT_TRUE(core::file_exists(png));
  auto img = data::read_image(png);  // [H,W,3] or [3,H,W] uint8
  const PlotLayout L;
  EXPECT_EQ(img.numel(), int64_t{3} * 2 * L.panel_height * L.width);  // two "_loss" panels
  // The written image is the rendering, labels included.
  auto expect = trainer::render_loss_plot(
      {{"critic_loss", log.series().at("critic_loss")}, {"dmd_loss", log.series().at("dmd_loss")}});
  auto got = img.size(0) == 3 ? img : img.permute({2, 0, 1});
  EXPECT_TRUE(torch::equal(got.contiguous(), expect));
}

}  // namespace
}  // namespace causvid
