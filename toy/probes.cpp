// toy/probes.cpp: see probes.h.
#include "toy/probes.h"

#include <absl/strings/str_format.h>

#include <array>
#include <cmath>

#include "core/random.h"

namespace causvid::toy {

namespace {

int attribute_of(const Attributes& a, int k) {
  switch (k) {
    case 0: return a.size;
    case 1: return a.colour;
    case 2: return a.shape;
    default: return a.direction;
  }
}

}  // namespace

std::vector<TextProbeRow> text_probe(models::TextConditioner& text) {
  const auto attrs = all_attributes();
  std::vector<std::string> prompts;
  for (const auto& a : attrs) prompts.push_back(make_prompt(a));
  torch::NoGradGuard ng;
  auto e = text.encode(prompts).to(torch::kFloat64).flatten(1);  // [96, T*E]
  const double scale = e.norm(2, 1).mean().item<double>();
  const std::array<const std::vector<std::string>*, 4> names = {
      &size_names(), &colour_names(), &shape_names(), &direction_names()};
  const char* labels[] = {"size", "colour", "shape", "direction"};
  std::vector<TextProbeRow> rows;
  const int64_t n = static_cast<int64_t>(attrs.size());
  for (int k = 0; k < 4; ++k) {
    TextProbeRow r;
    r.attribute = labels[k];
    r.values = static_cast<int>(names[k]->size());
    // Pairs one word apart in attribute k.
    double dist = 0;
    int64_t pairs = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = i + 1; j < n; ++j) {
        bool same_rest = true;
        for (int o = 0; o < 4; ++o)
          if (o != k && attribute_of(attrs[i], o) != attribute_of(attrs[j], o)) same_rest = false;
        if (!same_rest) continue;
        dist += (e[i] - e[j]).norm().item<double>();
        ++pairs;
      }
    r.relative_distance = pairs ? dist / pairs / std::max(1e-12, scale) : 0.0;
    // Leave-one-out nearest centroid: each value's sum once, the probed prompt taken out of
    // its own value's sum.
    std::vector<torch::Tensor> sums;  // one tensor each (copies of one tensor share storage)
    for (int v = 0; v < r.values; ++v) sums.push_back(torch::zeros({e.size(1)}, torch::kFloat64));
    std::vector<int64_t> counts(r.values, 0);
    for (int64_t j = 0; j < n; ++j) {
      sums[attribute_of(attrs[j], k)] += e[j];
      ++counts[attribute_of(attrs[j], k)];
    }
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int own = attribute_of(attrs[i], k);
      double best = 1e300;
      int best_v = -1;
      for (int v = 0; v < r.values; ++v) {
        const int64_t cnt = counts[v] - (v == own);
        auto centroid = (v == own ? sums[v] - e[i] : sums[v]) / std::max<int64_t>(1, cnt);
        const double d = (e[i] - centroid).norm().item<double>();
        if (d < best) {
          best = d;
          best_v = v;
        }
      }
      correct += best_v == own;
    }
    r.centroid_accuracy = static_cast<double>(correct) / n;
    rows.push_back(r);
  }
  return rows;
}

std::vector<CouplingRow> coupling_probe(models::WanModel& net, const torch::Tensor& context_1TE,
                                        const std::string& prompt, const WorldSpec& spec,
                                        const std::vector<double>& timesteps, uint64_t seed) {
  torch::NoGradGuard ng;
  const auto a = parse_prompt(prompt);
  auto clip = generate_for_prompts({prompt}, seed, spec);  // [1, F, C, H, W]
  auto gen = at::detail::createCPUGenerator(seed + 1);
  auto noise = core::randn(clip.sizes(), gen);
  const int64_t F = spec.frames, TH = spec.height / 2, TW = spec.width / 2;
  const int64_t f0 = F / 2 - 1, ty = TH / 2, tx = TW / 2;  // the perturbed token
  auto [vx, vy] = velocity(a.direction, spec.speed);
  // The token the motion leads to in the next frame (rounded to whole tokens).
  const int64_t my = ((ty + (vy >= 0 ? (vy + 1) / 2 : -((-vy + 1) / 2))) % TH + TH) % TH;
  const int64_t mx = ((tx + (vx >= 0 ? (vx + 1) / 2 : -((-vx + 1) / 2))) % TW + TW) % TW;
  std::vector<CouplingRow> rows;
  for (double t : timesteps) {
    const double s = t / 1000.0;  // Wan's flow matching: sigma = t / 1000
    auto x = (1 - s) * clip + s * noise;  // [1, F, C, H, W]
    auto x2 = x.clone();
    x2.index({0, f0, torch::indexing::Slice(), torch::indexing::Slice(2 * ty, 2 * ty + 2),
              torch::indexing::Slice(2 * tx, 2 * tx + 2)})
        .add_(3.0);
    auto tt = torch::full({1}, t);
    auto y0 = net->forward(x.permute({0, 2, 1, 3, 4}), tt, context_1TE, -1);
    auto y1 = net->forward(x2.permute({0, 2, 1, 3, 4}), tt, context_1TE, -1);
    // Per token mean |delta| over its 2x2 pixels and channels: [F, TH, TW].
    auto d = (y1 - y0).abs()[0].mean(0).view({F, TH, 2, TW, 2}).mean({2, 4});
    auto at = [&](int64_t f, int64_t y, int64_t xx) {
      return d[f][(y % TH + TH) % TH][(xx % TW + TW) % TW].item<double>();
    };
    CouplingRow r;
    r.t = t;
    r.self = at(f0, ty, tx);
    r.neighbours = (at(f0, ty - 1, tx) + at(f0, ty + 1, tx) + at(f0, ty, tx - 1) +
                    at(f0, ty, tx + 1)) / 4;
    r.next_frame = at(f0 + 1, ty, tx);
    r.next_frame_moved = at(f0 + 1, my, mx);
    double far = 0;
    int64_t nf = 0;
    for (int64_t f = 0; f < F; ++f)
      for (int64_t y = 0; y < TH; ++y)
        for (int64_t xx = 0; xx < TW; ++xx)
          if (std::max({std::abs(y - ty), std::abs(xx - tx)}) >= 3) {
            far += d[f][y][xx].item<double>();
            ++nf;
          }
    r.far = nf ? far / nf : 0.0;
    rows.push_back(r);
  }
  return rows;
}

std::string format_text_probe(const std::vector<TextProbeRow>& rows) {
  std::string s = absl::StrFormat("%-10s %6s %14s %14s\n", "attribute", "values",
                                  "rel. distance", "centroid acc.");
  for (const auto& r : rows)
    s += absl::StrFormat("%-10s %6d %14.4f %14.3f\n", r.attribute, r.values, r.relative_distance,
                         r.centroid_accuracy);
  return s;
}

std::string format_coupling_probe(const std::vector<CouplingRow>& rows) {
  std::string s = absl::StrFormat("%6s %10s %11s %11s %12s %10s %10s\n", "t", "self",
                                  "neighbours", "next frame", "next, moved", "far",
                                  "far/self");
  for (const auto& r : rows)
    s += absl::StrFormat("%6.0f %10.4f %11.4f %11.4f %12.4f %10.5f %10.5f\n", r.t, r.self,
                         r.neighbours, r.next_frame, r.next_frame_moved, r.far,
                         r.far / std::max(1e-12, r.self));
  return s;
}

}  // namespace causvid::toy
