// toy/metric.cpp: see metric.h.
#include "toy/metric.h"

#include <absl/strings/str_format.h>

#include <algorithm>
#include <cmath>

namespace causvid::toy {

namespace {

constexpr int kNumFeatures = 14;

struct Template {
  int shape, size;
  std::vector<std::pair<int, int>> offsets;  // (dy, dx) of the stamp's pixels from its centre
  double norm;                               // sqrt(pixel count)
  double area;
};

const std::vector<Template>& templates() {
  static const std::vector<Template> t = [] {
    std::vector<Template> out;
    for (int size = 0; size < 2; ++size)
      for (int shape = 0; shape < 3; ++shape) {
        auto s = stamp(shape, size);
        const int k = static_cast<int>(s.size(0)), c = k / 2;
        Template tp{shape, size, {}, 0, 0};
        auto a = s.accessor<float, 2>();
        for (int i = 0; i < k; ++i)
          for (int j = 0; j < k; ++j)
            if (a[i][j] > 0) tp.offsets.push_back({i - c, j - c});
        tp.area = static_cast<double>(tp.offsets.size());
        tp.norm = std::sqrt(tp.area);
        out.push_back(tp);
      }
    return out;
  }();
  return t;
}

int template_index(int shape, int size) { return size * 3 + shape; }

int64_t wrap_delta(int64_t d, int64_t n) {  // into [-n/2, n/2)
  d = ((d % n) + n) % n;
  return d >= n / 2 ? d - n : d;
}

// Peak ncc and its centre for one template over all circular shifts.
void match(const float* m, int64_t h, int64_t w, double m_norm, const Template& tp, double* best,
           int64_t* bx, int64_t* by) {
  *best = -1;
  *bx = *by = 0;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      double s = 0;
      for (const auto& [dy, dx] : tp.offsets) {
        int64_t yy = (y + dy + h) % h, xx = (x + dx + w) % w;
        s += m[yy * w + xx];
      }
      double ncc = m_norm > 1e-12 ? s / (m_norm * tp.norm) : 0.0;
      if (ncc > *best) {
        *best = ncc;
        *bx = x;
        *by = y;
      }
    }
}

// The index of the colour prototype nearest (cosine, RGB part) to the mean latent `mean_c` [C].
int nearest_colour(const torch::Tensor& mean_c) {
  auto mc = (mean_c - background_vector()).narrow(0, 0, 3);
  int best_c = -1;
  double best_cos = -2;
  for (int c = 0; c < 4; ++c) {
    auto proto = (colour_vector(c) - background_vector()).narrow(0, 0, 3);
    double cs = (mc * proto).sum().item<double>() /
                (mc.norm().item<double>() * proto.norm().item<double>() + 1e-12);
    if (cs > best_cos) {
      best_cos = cs;
      best_c = c;
    }
  }
  return best_c;
}

// Motion from the per-frame peak positions, displacements unwrapped on the torus: v->vx, vy,
// motion and direction.
void score_motion(const std::vector<int64_t>& px, const std::vector<int64_t>& py, int64_t w,
                  int64_t h, int direction, int64_t speed, VideoScore* vp) {
  VideoScore& v = *vp;
  const int64_t f = static_cast<int64_t>(px.size());
  auto [tvx, tvy] = velocity(direction, speed);
  const int64_t tol = speed / 2;  // 0 px at speed 1: a static shape must not pass
  double sx = 0, sy = 0, good = 0;
  for (int64_t t = 0; t + 1 < f; ++t) {
    const int64_t dx = wrap_delta(px[t + 1] - px[t], w), dy = wrap_delta(py[t + 1] - py[t], h);
    sx += dx;
    sy += dy;
    if (std::abs(dx - tvx) <= tol && std::abs(dy - tvy) <= tol) good += 1;
  }
  v.vx = sx / (f - 1);
  v.vy = sy / (f - 1);
  v.motion = good / (f - 1);
  {
    const double along = v.vx * tvx + v.vy * tvy;  // = speed * component along the direction
    const double across = std::abs(v.vx * tvy - v.vy * tvx);
    v.direction = (along >= 0.5 * speed * speed && across < along) ? 1.0 : 0.0;
    v.axis = (std::abs(along) >= 0.5 * speed * speed && across < std::abs(along)) ? 1.0 : 0.0;
  }
}

// Features in world units (colour 1, ratios 0.25, ncc 0.1, velocity 1 px, positions 0.5).
std::vector<double> features(const VideoScore& v, const torch::Tensor& mean_c,
                             const std::vector<double>& mass, double area, int64_t px0,
                             int64_t py0, int64_t w, int64_t h) {
  const int64_t f = static_cast<int64_t>(mass.size());
  double mean_mass = 0;
  for (double q : mass) mean_mass += q;
  mean_mass /= f;
  double flicker = 0;
  for (double q : mass) flicker += (q - mean_mass) * (q - mean_mass);
  flicker = std::sqrt(flicker / f) / area;
  auto ca = mean_c.accessor<float, 1>();
  return {ca[0], ca[1], ca[2], ca[3],
          (mean_mass / area) / 0.25,
          flicker / 0.25,
          v.ncc / 0.1,
          v.vx, v.vy,
          v.motion / 0.25,
          std::cos(2 * M_PI * px0 / w) / 0.5, std::sin(2 * M_PI * px0 / w) / 0.5,
          std::cos(2 * M_PI * py0 / h) / 0.5, std::sin(2 * M_PI * py0 / h) / 0.5};
}

}  // namespace

std::vector<std::string> corruption_kinds() {
  return {"static", "colour", "direction", "blur", "noisy", "noise"};
}

VideoScore score_video(const torch::Tensor& latents_FCHW, const Attributes& a, int64_t speed) {
  TORCH_CHECK(latents_FCHW.dim() == 4 && latents_FCHW.size(1) == kChannels,
              "toy metric: video of shape ", latents_FCHW.sizes(), ", want [F, 4, H, W]");
  auto x = latents_FCHW.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t f = x.size(0), h = x.size(2), w = x.size(3);
  TORCH_CHECK(f >= 2, "toy metric: ", f, " frames, want >= 2");
  auto diff = x - background_vector().view({1, kChannels, 1, 1});       // [F,C,H,W]
  auto m_FHW = (diff.norm(2, 1) / colour_distance()).clamp(0, 1).contiguous();  // [F,H,W]
  const float* m = m_FHW.data_ptr<float>();
  const auto& tps = templates();
  const Template& want = tps[template_index(a.shape, a.size)];

  VideoScore v;
  std::vector<int64_t> px(f), py(f);
  std::vector<double> mass(f);
  double present = 0, sharp = 0, shape_ok = 0, ncc_sum = 0;
  for (int64_t t = 0; t < f; ++t) {
    const float* mf = m + t * h * w;
    double msum = 0, m2 = 0;
    for (int64_t i = 0; i < h * w; ++i) {
      msum += mf[i];
      m2 += double(mf[i]) * mf[i];
    }
    mass[t] = msum;
    const double mnorm = std::sqrt(m2);
    double best_any = -1;
    int best_j = -1;
    for (size_t j = 0; j < tps.size(); ++j) {
      double b;
      int64_t bx, by;
      match(mf, h, w, mnorm, tps[j], &b, &bx, &by);
      if (b > best_any + 1e-9) {
        best_any = b;
        best_j = static_cast<int>(j);
      }
      if (&tps[j] == &want) {
        px[t] = bx;
        py[t] = by;
        ncc_sum += b;
        sharp += std::clamp((b - 0.6) / 0.35, 0.0, 1.0);
      }
    }
    if (best_j == template_index(a.shape, a.size)) shape_ok += 1;
    if (msum >= 0.5 * want.area && msum <= 2.0 * want.area) present += 1;
  }
  v.presence = present / f;
  v.sharpness = sharp / f;
  v.shape = shape_ok / f;
  v.ncc = ncc_sum / f;

  // Colour: m^2-weighted mean of the latent over all frames.
  auto wgt = m_FHW.pow(2).unsqueeze(1);  // [F,1,H,W]
  const double wsum = wgt.sum().item<double>();
  auto mean_c = wsum > 1e-9 ? ((x * wgt).sum({0, 2, 3}) / wsum) : x.mean({0, 2, 3});  // [C]
  v.colour = nearest_colour(mean_c) == a.colour ? 1.0 : 0.0;

  // Motion from the peak positions, displacements unwrapped on the torus.
  score_motion(px, py, w, h, a.direction, speed, &v);
  v.score = (v.presence + v.sharpness + v.shape + v.colour + v.direction + v.motion) / 6.0;

  // Features in world units (colour 1, ratios 0.25, ncc 0.1, velocity 1 px, positions 0.5).
  v.features = features(v, mean_c, mass, want.area, px[0], py[0], w, h);
  TORCH_INTERNAL_ASSERT(v.features.size() == kNumFeatures);
  for (auto& q : v.features)
    if (!std::isfinite(q)) q = 0;
  return v;
}

double frechet_distance(const torch::Tensor& a_ND, const torch::Tensor& b_MD) {
  TORCH_CHECK(a_ND.dim() == 2 && b_MD.dim() == 2 && a_ND.size(1) == b_MD.size(1),
              "frechet_distance: feature sets of shapes ", a_ND.sizes(), " and ", b_MD.sizes(),
              ", want [N, D] and [M, D]");
  TORCH_CHECK(a_ND.size(0) >= 2 && b_MD.size(0) >= 2,
              "frechet_distance: want at least 2 samples per set, got ", a_ND.size(0), " and ",
              b_MD.size(0));
  auto a = a_ND.to(torch::kFloat64), b = b_MD.to(torch::kFloat64);
  auto mu1 = a.mean(0), mu2 = b.mean(0);
  auto ca = a - mu1, cb = b - mu2;
  auto s1 = ca.t().mm(ca) / (a.size(0) - 1), s2 = cb.t().mm(cb) / (b.size(0) - 1);
  auto sqrtm = [](const torch::Tensor& s) {
    auto [e, q] = torch::linalg_eigh(s);
    return q.mm(torch::diag(e.clamp_min(0).sqrt())).mm(q.t());
  };
  auto r1 = sqrtm(s1);
  auto mid = r1.mm(s2).mm(r1);
  mid = 0.5 * (mid + mid.t());
  auto ev = std::get<0>(torch::linalg_eigh(mid)).clamp_min(0).sqrt().sum();
  double fd = (mu1 - mu2).pow(2).sum().item<double>() + s1.trace().item<double>() +
              s2.trace().item<double>() - 2 * ev.item<double>();
  return std::max(0.0, fd);
}

std::vector<VideoScore> score_videos(const torch::Tensor& latents_NFCHW,
                                     const std::vector<std::string>& prompts, int64_t speed) {
  TORCH_CHECK(latents_NFCHW.dim() == 5 && latents_NFCHW.size(2) == kChannels,
              "toy metric: latents of shape ", latents_NFCHW.sizes(), ", want [N, F, 4, H, W]");
  TORCH_CHECK(latents_NFCHW.size(0) == static_cast<int64_t>(prompts.size()), "toy metric: ",
              latents_NFCHW.size(0), " videos but ", prompts.size(), " prompts");
  TORCH_CHECK(torch::isfinite(latents_NFCHW).all().item<bool>(),
              "toy metric: latents hold NaN or Inf");
  std::vector<VideoScore> out;
  for (size_t i = 0; i < prompts.size(); ++i)
    out.push_back(score_video(latents_NFCHW[i], parse_prompt(prompts[i]), speed));
  return out;
}

SetScore summarize(const std::vector<VideoScore>& videos, const std::vector<VideoScore>& reference) {
  SetScore s;
  s.num = static_cast<int64_t>(videos.size());
  TORCH_CHECK(s.num > 0, "toy metric: no videos");
  for (const auto& v : videos) {
    s.presence += v.presence;
    s.sharpness += v.sharpness;
    s.shape += v.shape;
    s.colour += v.colour;
    s.direction += v.direction;
    s.axis += v.axis;
    s.motion += v.motion;
    s.video_score += v.score;
  }
  for (double* p : {&s.presence, &s.sharpness, &s.shape, &s.colour, &s.direction, &s.axis,
                    &s.motion, &s.video_score})
    *p /= s.num;
  auto feats = [](const std::vector<VideoScore>& vs) {
    auto t = torch::empty({(int64_t)vs.size(), kNumFeatures}, torch::kFloat64);
    auto a = t.accessor<double, 2>();
    for (size_t i = 0; i < vs.size(); ++i)
      for (int d = 0; d < kNumFeatures; ++d) a[i][d] = vs[i].features[d];
    return t;
  };
  if (reference.size() >= 2 && videos.size() >= 2) {
    s.fd = frechet_distance(feats(videos), feats(reference));
    s.dist = std::exp(-s.fd / 10.0);
  } else {
    s.fd = 0;
    s.dist = 1;
  }
  s.overall = 100.0 * (0.8 * s.video_score + 0.2 * s.dist);
  return s;
}

SetScore evaluate(const torch::Tensor& latents_NFCHW, const std::vector<std::string>& prompts,
                  const WorldSpec& spec, uint64_t ref_seed) {
  auto ref = generate_for_prompts(prompts, ref_seed, spec, latents_NFCHW.size(1));
  return summarize(score_videos(latents_NFCHW, prompts, spec.speed),
                   score_videos(ref, prompts, spec.speed));
}

torch::Tensor corrupt(const torch::Tensor& latents_NFCHW, const std::string& kind, uint64_t seed) {
  auto x = latents_NFCHW.to(torch::kFloat32).clone();
  auto gen = at::detail::createCPUGenerator(seed);
  if (kind == "static") return x.narrow(1, 0, 1).expand_as(x).contiguous();
  if (kind == "colour") {
    auto c = x.narrow(2, 0, 3);
    return torch::cat({c.roll(1, 2), x.narrow(2, 3, 1)}, 2);
  }
  if (kind == "direction") return x.flip({1}).contiguous();
  if (kind == "blur") {
    for (int rep = 0; rep < 2; ++rep)
      for (int64_t dim : {3, 4})
        x = 0.25 * x.roll(1, dim) + 0.5 * x + 0.25 * x.roll(-1, dim);
    return x;
  }
  if (kind == "noisy") return x + 0.5 * at::randn(x.sizes(), gen, x.options());
  if (kind == "noise") return at::randn(x.sizes(), gen, x.options());
  std::string kinds;
  for (const auto& k : corruption_kinds()) kinds += (kinds.empty() ? "" : ", ") + k;
  TORCH_CHECK(false, "--corrupt: got '", kind, "', want one of ", kinds);
}

std::string set_score_header() {
  return absl::StrFormat("%-28s %5s %8s %8s %8s %8s %8s %6s %8s %8s %8s %8s", "set", "n",
                         "present", "sharp", "shape", "colour", "direct", "(axis)", "motion",
                         "video", "FD", "OVERALL");
}

std::string format_set_score(const std::string& name, const SetScore& s) {
  return absl::StrFormat("%-28s %5d %8.3f %8.3f %8.3f %8.3f %8.3f %6.2f %8.3f %8.3f %8.2f %8.1f",
                         name, s.num, s.presence, s.sharpness, s.shape, s.colour, s.direction,
                         s.axis, s.motion, s.video_score, s.fd, s.overall);
}

}  // namespace causvid::toy
