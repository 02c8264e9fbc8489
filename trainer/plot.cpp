// trainer/plot.cpp: see plot.h. A Canvas with pixel, line and text primitives over a [3,H,W]
// uint8 accessor; render_loss_plot lays out the panels. The font is a hand-drawn 5x7 bitmap
// (lowercase, digits, the punctuation of "%.3g" numbers and metric names); uppercase letters
// are drawn as lowercase and unknown characters as a box.
#include "trainer/plot.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>

namespace causvid::trainer {
namespace {

// size: data table
// 7 rows of 5 columns per glyph, '#' = ink.
const std::map<char, std::array<const char*, 7>>& font() {
  static const std::map<char, std::array<const char*, 7>> kFont = {
      {'0', {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "}},
      {'1', {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
      {'2', {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"}},
      {'3', {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "}},
      {'4', {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "}},
      {'5', {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "}},
      {'6', {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "}},
      {'7', {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "}},
      {'8', {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "}},
      {'9', {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "}},
      {'a', {"     ", "     ", " ### ", "    #", " ####", "#   #", " ####"}},
      {'b', {"#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#### "}},
      {'c', {"     ", "     ", " ### ", "#    ", "#    ", "#   #", " ### "}},
      {'d', {"    #", "    #", " ## #", "#  ##", "#   #", "#   #", " ####"}},
      {'e', {"     ", "     ", " ### ", "#   #", "#####", "#    ", " ### "}},
      {'f', {"  ## ", " #  #", " #   ", "###  ", " #   ", " #   ", " #   "}},
      {'g', {"     ", " ####", "#   #", "#   #", " ####", "    #", " ### "}},
      {'h', {"#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#   #"}},
      {'i', {"  #  ", "     ", " ##  ", "  #  ", "  #  ", "  #  ", " ### "}},
      {'j', {"   # ", "     ", "  ## ", "   # ", "   # ", "#  # ", " ##  "}},
      {'k', {"#    ", "#    ", "#  # ", "# #  ", "##   ", "# #  ", "#  # "}},
      {'l', {" ##  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
      {'m', {"     ", "     ", "## # ", "# # #", "# # #", "#   #", "#   #"}},
      {'n', {"     ", "     ", "# ## ", "##  #", "#   #", "#   #", "#   #"}},
      {'o', {"     ", "     ", " ### ", "#   #", "#   #", "#   #", " ### "}},
      {'p', {"     ", "     ", "#### ", "#   #", "#### ", "#    ", "#    "}},
      {'q', {"     ", "     ", " ## #", "#  ##", " ####", "    #", "    #"}},
      {'r', {"     ", "     ", "# ## ", "##  #", "#    ", "#    ", "#    "}},
      {'s', {"     ", "     ", " ### ", "#    ", " ### ", "    #", "#### "}},
      {'t', {" #   ", " #   ", "###  ", " #   ", " #   ", " #  #", "  ## "}},
      {'u', {"     ", "     ", "#   #", "#   #", "#   #", "#  ##", " ## #"}},
      {'v', {"     ", "     ", "#   #", "#   #", "#   #", " # # ", "  #  "}},
      {'w', {"     ", "     ", "#   #", "#   #", "# # #", "# # #", " # # "}},
      {'x', {"     ", "     ", "#   #", " # # ", "  #  ", " # # ", "#   #"}},
      {'y', {"     ", "     ", "#   #", "#   #", " ####", "    #", " ### "}},
      {'z', {"     ", "     ", "#####", "   # ", "  #  ", " #   ", "#####"}},
      {' ', {"     ", "     ", "     ", "     ", "     ", "     ", "     "}},
      {'.', {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "}},
      {',', {"     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "}},
      {'-', {"     ", "     ", "     ", "#####", "     ", "     ", "     "}},
      {'+', {"     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "}},
      {'_', {"     ", "     ", "     ", "     ", "     ", "     ", "#####"}},
      {':', {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "}},
      {'=', {"     ", "     ", "#####", "     ", "#####", "     ", "     "}},
      {'(', {"   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "}},
      {')', {" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "}},
      {'/', {"     ", "    #", "   # ", "  #  ", " #   ", "#    ", "     "}},
      {'%', {"##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##"}},
      {'?', {"#####", "#   #", "#   #", "#   #", "#   #", "#   #", "#####"}},
  };
  return kFont;
}

class Canvas {
 public:
  explicit Canvas(torch::Tensor& img)
      : a_(img.accessor<uint8_t, 3>()), h_(img.size(1)), w_(img.size(2)) {}

  void put(int x, int y, const uint8_t* rgb) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    for (int c = 0; c < 3; ++c) a_[c][y][x] = rgb[c];
  }
  void line(int x0, int y0, int x1, int y1, const uint8_t* rgb) {
    const int n = std::max(std::abs(x1 - x0), std::abs(y1 - y0)) + 1;
    for (int i = 0; i <= n; ++i) put(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, rgb);
  }
  void fill(int x0, int y0, int x1, int y1, const uint8_t* rgb) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) put(x, y, rgb);
  }
  // Text with its top-left corner at (x, y); 6 * scale pixels per character.
  void text(int x, int y, const std::string& s, const uint8_t* rgb, int scale = 1) {
    const auto& f = font();
    for (char ch : s) {
      auto it = f.find(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
      const auto& g = it != f.end() ? it->second : f.at('?');
      for (int r = 0; r < 7; ++r)
        for (int c = 0; c < 5; ++c)
          if (g[r][c] == '#') fill(x + c * scale, y + r * scale, x + (c + 1) * scale,
                                   y + (r + 1) * scale, rgb);
      x += 6 * scale;
    }
  }

 private:
  at::TensorAccessor<uint8_t, 3> a_;
  int64_t h_, w_;
};

std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", v);
  return buf;
}

// One panel whose plot area spans [left, right] x [top, bottom].
void draw_panel(Canvas& cv, const std::string& name, const Series& s, int y0,
                const PlotLayout& L) {
  using C = PlotColors;
  const int left = L.margin_left, right = L.width - L.margin_right;
  const int top = y0 + L.margin_top, bottom = y0 + L.panel_height - L.margin_bottom;
  double lo = s[0].second, hi = s[0].second;
  for (const auto& v : s) lo = std::min(lo, v.second), hi = std::max(hi, v.second);
  if (hi - lo < 1e-12) hi = lo + 1e-12;
  const int64_t s0 = s.front().first, s1 = std::max(s.back().first, s0 + 1);
  auto X = [&](double st) { return left + static_cast<int>((right - left) * (st - s0) / (s1 - s0)); };
  auto Y = [&](double v) { return bottom - static_cast<int>((bottom - top) * (v - lo) / (hi - lo)); };
  // Grid, ticks and tick values.
  const int n = std::max(2, L.num_ticks);
  for (int k = 0; k < n; ++k) {
    const double v = lo + (hi - lo) * k / (n - 1);
    const int y = Y(v);
    cv.line(left + 1, y, right, y, C::kGrid);
    cv.line(left - 4, y, left, y, C::kAxis);
    const std::string lv = tick_label(v);
    cv.text(left - 7 - text_width(lv), y - 3, lv, C::kText);
    const double st = s0 + double(s1 - s0) * k / (n - 1);
    const int x = X(st);
    cv.line(x, top, x, bottom - 1, C::kGrid);
    cv.line(x, bottom, x, bottom + 4, C::kAxis);
    const std::string ls = std::to_string(std::llround(st));  // steps: whole numbers
    cv.text(std::clamp(x - text_width(ls) / 2, 0, L.width - text_width(ls)), bottom + 7, ls,
            C::kText);
  }
  cv.line(left, bottom, right, bottom, C::kAxis);
  cv.line(left, top, left, bottom, C::kAxis);
  // Title, axis labels, legend.
  cv.text(left, y0 + 8, name, C::kText, 2);
  cv.text(right - text_width("step"), bottom + 18, "step", C::kText);
  cv.text(4, top - 12, "loss", C::kText);
  const std::string mean_label = "mean (ema " + tick_label(L.mean_momentum) + ")";
  int lx = right - text_width(mean_label) - text_width("raw") - 40;
  cv.fill(lx, y0 + 12, lx + 12, y0 + 15, C::kRaw);
  cv.text(lx + 15, y0 + 10, "raw", C::kText);
  lx += 15 + text_width("raw") + 10;
  cv.fill(lx, y0 + 12, lx + 12, y0 + 15, C::kMean);
  cv.text(lx + 15, y0 + 10, mean_label, C::kText);
  // The curves: raw values, then the running mean over them.
  int px = X(s[0].first), py = Y(s[0].second), mx = px, my = py;
  for (size_t i = 1; i < s.size(); ++i) {
    const int x = X(s[i].first), y = Y(s[i].second);
    cv.line(px, py, x, y, C::kRaw);
    px = x, py = y;
  }
  double mean = s[0].second;
  for (size_t i = 1; i < s.size(); ++i) {
    mean = L.mean_momentum * mean + (1 - L.mean_momentum) * s[i].second;
    const int x = X(s[i].first), y = Y(mean);
    cv.line(mx, my, x, y, C::kMean);
    mx = x, my = y;
  }
}

}  // namespace

int text_width(const std::string& text, int scale) {
  return static_cast<int>(text.size()) * 6 * scale;
}

torch::Tensor render_loss_plot(const std::vector<std::pair<std::string, Series>>& panels,
                               const PlotLayout& layout) {
  const int H = std::max<int>(1, static_cast<int>(panels.size())) * layout.panel_height;
  auto img = torch::full({3, H, layout.width}, 255, torch::kUInt8);
  Canvas cv(img);
  for (size_t p = 0; p < panels.size(); ++p) {
    TORCH_CHECK(!panels[p].second.empty(), "render_loss_plot: series ", panels[p].first,
                " is empty");
    draw_panel(cv, panels[p].first, panels[p].second, static_cast<int>(p) * layout.panel_height,
               layout);
  }
  return img;
}

}  // namespace causvid::trainer
