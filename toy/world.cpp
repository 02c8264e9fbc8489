// toy/world.cpp: see world.h.
#include "toy/world.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include "data/image_io.h"
#include "data/video_io.h"

namespace causvid::toy {

namespace {

constexpr double kColourScale = 1.5;  // length of the colour part (channels 0..2)

int index_of(const std::vector<std::string>& names, const std::string& w) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == w) return static_cast<int>(i);
  return -1;
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (std::isalnum(c)) {
      cur += static_cast<char>(std::tolower(c));
    } else if (!cur.empty()) {
      out.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace

const std::vector<std::string>& size_names() {
  static const std::vector<std::string> v = {"small", "large"};
  return v;
}
const std::vector<std::string>& colour_names() {
  static const std::vector<std::string> v = {"red", "green", "blue", "yellow"};
  return v;
}
const std::vector<std::string>& shape_names() {
  static const std::vector<std::string> v = {"square", "diamond", "cross"};
  return v;
}
const std::vector<std::string>& direction_names() {
  static const std::vector<std::string> v = {"left", "right", "up", "down"};
  return v;
}

std::vector<std::string> vocabulary() {
  std::vector<std::string> v = {"a", "moving"};
  for (const auto* names : {&size_names(), &colour_names(), &shape_names(), &direction_names()})
    v.insert(v.end(), names->begin(), names->end());
  return v;
}

std::string make_prompt(const Attributes& a) {
  return "a " + size_names().at(a.size) + " " + colour_names().at(a.colour) + " " +
         shape_names().at(a.shape) + " moving " + direction_names().at(a.direction);
}

Attributes parse_prompt(const std::string& prompt) {
  auto w = split_words(prompt);
  TORCH_CHECK(w.size() == 6 && w[0] == "a" && w[4] == "moving", "toy prompt '", prompt,
              "': want 'a <size> <colour> <shape> moving <direction>'");
  Attributes a;
  a.size = index_of(size_names(), w[1]);
  a.colour = index_of(colour_names(), w[2]);
  a.shape = index_of(shape_names(), w[3]);
  a.direction = index_of(direction_names(), w[5]);
  TORCH_CHECK(a.size >= 0, "toy prompt '", prompt, "': unknown size '", w[1], "'");
  TORCH_CHECK(a.colour >= 0, "toy prompt '", prompt, "': unknown colour '", w[2], "'");
  TORCH_CHECK(a.shape >= 0, "toy prompt '", prompt, "': unknown shape '", w[3], "'");
  TORCH_CHECK(a.direction >= 0, "toy prompt '", prompt, "': unknown direction '", w[5], "'");
  return a;
}

std::vector<Attributes> all_attributes() {
  std::vector<Attributes> out;
  for (int s = 0; s < (int)size_names().size(); ++s)
    for (int c = 0; c < (int)colour_names().size(); ++c)
      for (int h = 0; h < (int)shape_names().size(); ++h)
        for (int d = 0; d < (int)direction_names().size(); ++d) out.push_back({s, c, h, d});
  return out;
}

torch::Tensor colour_vector(int colour) {
  static const double kDirs[4][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {M_SQRT1_2, M_SQRT1_2, 0}};
  TORCH_CHECK(colour >= 0 && colour < 4, "toy colour index ", colour, ", want 0..3");
  return torch::tensor({static_cast<float>(kColourScale * kDirs[colour][0]),
                        static_cast<float>(kColourScale * kDirs[colour][1]),
                        static_cast<float>(kColourScale * kDirs[colour][2]), 1.0f});
}

torch::Tensor background_vector() { return torch::tensor({0.0f, 0.0f, 0.0f, -1.0f}); }

double colour_distance() { return std::sqrt(kColourScale * kColourScale + 4.0); }

std::pair<int64_t, int64_t> velocity(int direction, int64_t speed) {
  switch (direction) {
    case 0: return {-speed, 0};
    case 1: return {speed, 0};
    case 2: return {0, -speed};
    case 3: return {0, speed};
    default: TORCH_CHECK(false, "toy direction index ", direction, ", want 0..3");
  }
}

torch::Tensor stamp(int shape, int size) {
  TORCH_CHECK(size == 0 || size == 1, "toy size index ", size, ", want 0..1");
  const int64_t k = size == 0 ? 5 : 7;
  const int64_t c = k / 2;
  auto s = torch::zeros({k, k});
  auto a = s.accessor<float, 2>();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t di = std::abs(i - c), dj = std::abs(j - c);
      bool in = false;
      switch (shape) {
        case 0: in = true; break;                      // square
        case 1: in = di + dj <= c; break;              // diamond
        case 2: in = di <= size || dj <= size; break;  // cross: arms 1 (small) / 3 (large) wide
        default: TORCH_CHECK(false, "toy shape index ", shape, ", want 0..2");
      }
      a[i][j] = in ? 1.0f : 0.0f;
    }
  return s;
}

torch::Tensor place(const torch::Tensor& stamp_kk, int64_t x, int64_t y, int64_t height,
                    int64_t width) {
  const int64_t k = stamp_kk.size(0), c = k / 2;
  auto out = torch::zeros({height, width});
  auto o = out.accessor<float, 2>();
  auto s = stamp_kk.accessor<float, 2>();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      if (s[i][j] == 0) continue;
      int64_t yy = ((y + i - c) % height + height) % height;
      int64_t xx = ((x + j - c) % width + width) % width;
      o[yy][xx] = std::max(o[yy][xx], s[i][j]);
    }
  return out;
}

torch::Tensor render(const Attributes& a, int64_t x0, int64_t y0, const WorldSpec& spec,
                     int64_t frames) {
  if (frames < 0) frames = spec.frames;
  auto st = stamp(a.shape, a.size);
  auto [vx, vy] = velocity(a.direction, spec.speed);
  auto bg = background_vector().view({kChannels, 1, 1});
  auto fg = colour_vector(a.colour).view({kChannels, 1, 1});
  auto out = torch::empty({frames, kChannels, spec.height, spec.width});
  for (int64_t t = 0; t < frames; ++t) {
    auto m = place(st, x0 + t * vx, y0 + t * vy, spec.height, spec.width).unsqueeze(0);
    out[t].copy_(bg + m * (fg - bg));
  }
  return out;
}

torch::Tensor generate_for_prompts(const std::vector<std::string>& prompts, uint64_t seed,
                                   const WorldSpec& spec, int64_t frames) {
  if (frames < 0) frames = spec.frames;
  SplitMix rng(seed * 0x9E3779B97F4A7C15ull + 17);
  auto out = torch::empty({(int64_t)prompts.size(), frames, kChannels, spec.height, spec.width});
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto a = parse_prompt(prompts[i]);
    const int64_t al = std::max<int64_t>(1, spec.align);
    int64_t x0 = al * rng.below(spec.width / al), y0 = al * rng.below(spec.height / al);
    if (spec.wrap_free) {
      // The whole trajectory inside the frame (no wrap-around within the clip): a RoPE model
      // sees one consistent relative motion. Falls back to the torus when it cannot fit.
      const int64_t r = stamp(a.shape, a.size).size(0) / 2;
      auto [vx, vy] = velocity(a.direction, spec.speed);
      auto pick = [&](int64_t n, int64_t v, int64_t fallback) {
        const int64_t travel = (frames - 1) * v;
        const int64_t lo = r + std::max<int64_t>(0, -travel);
        const int64_t hi = n - 1 - r - std::max<int64_t>(0, travel);
        return hi >= lo ? lo + rng.below(hi - lo + 1) : fallback;
      };
      x0 = pick(spec.width, vx, x0);
      y0 = pick(spec.height, vy, y0);
    }
    out[i].copy_(render(a, x0, y0, spec, frames));
  }
  return out;
}

Dataset generate(int64_t num, uint64_t seed, const WorldSpec& spec, int64_t frames) {
  TORCH_CHECK(num >= 1, "--num: got ", num, ", want >= 1");
  auto attrs = all_attributes();
  SplitMix rng(seed ^ 0xD1B54A32D192ED03ull);
  Dataset d;
  std::vector<Attributes> order;
  while ((int64_t)d.prompts.size() < num) {
    if (order.empty()) {  // a fresh shuffled pass over all combinations
      order = attrs;
      for (size_t i = order.size() - 1; i > 0; --i)
        std::swap(order[i], order[rng.below(static_cast<int64_t>(i) + 1)]);
    }
    d.prompts.push_back(make_prompt(order.back()));
    order.pop_back();
  }
  d.latents = generate_for_prompts(d.prompts, seed, spec, frames);
  return d;
}

torch::Tensor latents_to_rgb(const torch::Tensor& latents_FCHW, int64_t scale) {
  auto x = latents_FCHW.dim() == 3 ? latents_FCHW.unsqueeze(0) : latents_FCHW;
  TORCH_CHECK(x.dim() == 4 && x.size(1) == kChannels, "latents_to_rgb: latents of shape ",
              latents_FCHW.sizes(), ", want [F, 4, H, W]");
  TORCH_CHECK(scale >= 1, "latents_to_rgb: scale ", scale, ", want >= 1");
  x = x.detach().to(torch::kCPU, torch::kFloat32);
  auto rgb = 0.2 + 0.5 * x.narrow(1, 0, 3) + 0.05 * x.narrow(1, 3, 1);  // [F,3,H,W]
  rgb = (rgb.clamp(0, 1) * 255.0).round().to(torch::kUInt8);
  if (scale > 1) rgb = rgb.repeat_interleave(scale, 2).repeat_interleave(scale, 3);
  return rgb.permute({0, 2, 3, 1}).contiguous();  // [F, H*s, W*s, 3]
}

torch::Tensor preview_frames(const torch::Tensor& latents_FCHW, int64_t scale) {
  return latents_to_rgb(latents_FCHW, scale).permute({0, 3, 1, 2}).contiguous();
}

void write_preview_png(const std::string& path, const torch::Tensor& latents, int64_t scale,
                       int64_t max_videos) {
  auto x = latents.dim() == 4 ? latents.unsqueeze(0) : latents;
  TORCH_CHECK(x.dim() == 5, path, ": preview latents of shape ", latents.sizes(),
              ", want [N, F, C, H, W] or [F, C, H, W]");
  const int64_t n = std::min<int64_t>(x.size(0), std::max<int64_t>(1, max_videos));
  std::vector<torch::Tensor> frames;
  for (int64_t i = 0; i < n; ++i) frames.push_back(latents_to_rgb(x[i], scale).permute({0, 3, 1, 2}));
  data::GridOptions g;
  g.num_cols = static_cast<int>(x.size(1));
  g.padding = 2;
  g.pad_value = 255;
  data::write_png(path, data::make_grid(torch::cat(frames, 0), g));
}

void write_preview_mp4(const std::string& path, const torch::Tensor& latents_FCHW, int64_t scale,
                       double fps) {
  auto rgb = latents_to_rgb(latents_FCHW, scale).permute({0, 3, 1, 2}).contiguous();
  data::WriterOptions o;
  o.fps = fps;
  o.odd_size = data::OddSize::kPad;
  data::write_video(path, rgb, o);
}

uint64_t SplitMix::next() {
  uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
double SplitMix::uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
double SplitMix::normal() {
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}
int64_t SplitMix::below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }

}  // namespace causvid::toy
