// toy/metric.h: the toy world's quality metric (`causvid eval toy`; justified in
// docs/toy_world.md). No reference counterpart: CausVid reports VBench, which needs pixels
// and large networks; the toy world is synthetic, so its ground truth is known exactly.
//
// Per video [F, C, H, W] with the attributes its prompt names:
//   m(y,x) = clamp(|latent(y,x) - background| / 2.5, 0, 1)   the foreground map per frame
//   presence  fraction of frames whose foreground mass is 0.5x..2x the prompt shape's area
//   sharpness mean over frames of clamp((ncc - 0.6) / 0.35, 0, 1), ncc = the peak normalised
//             circular cross-correlation of m with the prompt's stamp (1.0 for a clean shape;
//             blur, noise or a smeared blob lower it)
//   shape     fraction of frames whose best-matching stamp among all 6 (shape x size) is the
//             prompt's
//   colour    1 if the m^2-weighted mean colour is nearest (cosine, channels 0..2) to the
//             prompt's colour
//   direction 1 if the mean per-frame displacement (peak positions, unwrapped on the torus)
//             points along the prompt's direction with at least half the world's speed
//   motion    fraction of consecutive frame pairs whose displacement is within 1 px (per
//             axis) of the prompt's velocity: trajectory linearity and speed consistency
//   score     mean of the six, in [0, 1]
//   axis      (diagnostic, not in the score) 1 if the mean displacement lies along the
//             prompt's axis, either way, with at least half the speed: direction < axis
//             means the sign of the motion is wrong, not its axis
// Per set: the means, a Frechet distance between Gaussian fits of hand-made per-video
// features (14: mean colour, mass/area, mass flicker, ncc, mean velocity, motion, start
// position on the torus as cos/sin) of the set and a real reference set for the same
// prompts (features in fixed world units), dist = exp(-FD / 10), and
//   overall = 100 * (0.8 * mean video score + 0.2 * dist).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "toy/world.h"

namespace causvid::toy {

struct VideoScore {
  double presence = 0, sharpness = 0, shape = 0, colour = 0, direction = 0, motion = 0;
  double axis = 0;  // diagnostic: direction up to its sign
  double score = 0;
  double ncc = 0;          // mean peak ncc
  double vx = 0, vy = 0;   // mean displacement per frame (px)
  std::vector<double> features;
};

struct SetScore {
  int64_t num = 0;
  double presence = 0, sharpness = 0, shape = 0, colour = 0, direction = 0, motion = 0;
  double axis = 0;         // diagnostic (not in the scores)
  double video_score = 0;  // mean per-video score
  double fd = 0;           // Frechet distance to the reference features
  double dist = 0;         // exp(-fd / 10)
  double overall = 0;      // 100 * (0.8 video_score + 0.2 dist)
};

// One video [F, C, H, W] (float, any device). speed: the world's pixels per frame.
VideoScore score_video(const torch::Tensor& latents_FCHW, const Attributes& a, int64_t speed);

// Frechet distance between Gaussian fits of two feature sets [N, D] and [M, D] (float64;
// covariances with the 1/(n-1) normaliser; matrix square root by symmetric eigensolves).
double frechet_distance(const torch::Tensor& a_ND, const torch::Tensor& b_MD);

// Scores a set [N, F, C, H, W] against its prompts and real reference features (from
// score_videos of real data). reference may be empty: fd = 0, dist = 1.
std::vector<VideoScore> score_videos(const torch::Tensor& latents_NFCHW,
                                     const std::vector<std::string>& prompts, int64_t speed);
SetScore summarize(const std::vector<VideoScore>& videos,
                   const std::vector<VideoScore>& reference);
// Convenience: score a set against fresh real videos for the same prompts (seed ref_seed,
// same frame count).
SetScore evaluate(const torch::Tensor& latents_NFCHW, const std::vector<std::string>& prompts,
                  const WorldSpec& spec, uint64_t ref_seed = 1234567);

// Corrupted copies of a set, for testing the metric: "static" (frame 0 repeated), "colour"
// (colour channels rotated), "direction" (time reversed: opposite motion), "blur" (3x3
// binomial blur twice, circular), "noisy" (+ N(0, 0.5^2)), "noise" (pure N(0, 1)).
torch::Tensor corrupt(const torch::Tensor& latents_NFCHW, const std::string& kind,
                      uint64_t seed = 0);
std::vector<std::string> corruption_kinds();

std::string format_set_score(const std::string& name, const SetScore& s);
std::string set_score_header();

}  // namespace causvid::toy
