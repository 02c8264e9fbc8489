// toy/world.h: the CPU toy world of issue #5. Synthetic latent videos (no VAE): C = 4
// latent channels, F latent frames of H x W, one shape moving at constant velocity on a flat
// background. The prompt names every attribute but the start position:
//
//   "a <size> <colour> <shape> moving <direction>"   e.g. "a large red square moving left"
//
//   size      small | large                      (stamp 5x5 | 7x7 latent pixels)
//   colour    red | green | blue | yellow        (a direction in the 4-channel latent space)
//   shape     square | diamond | cross
//   direction left | right | up | down           (speed: WorldSpec::speed px per frame)
//
// 2 x 4 x 3 x 4 = 96 prompts. The start position is uniform over the H x W torus (on the
// 2-pixel patch grid by default: WorldSpec::align); the shape
// wraps around the edges (periodic world), so any length, e.g. the 4x rollout of the causal
// student, is a valid video of the same prompt. No reference counterpart: CausVid has no toy
// world; this is ours (docs/toy_world.md).
//
// Latent values: background (0, 0, 0, -1); a shape of colour u (unit vector in channels
// 0..2) has value (1.5 u, +1): every colour is at the same distance 2.5 from the background,
// so presence is colour-independent. Preview: rgb = 0.2 + 0.5 c[0:3] + 0.05 c[3].
//
// Legend: N videos, F frames, C channels, H height, W width.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace causvid::toy {

constexpr int64_t kChannels = 4;

struct WorldSpec {
  int64_t frames = 6;   // latent frames of a training video (a multiple of 3: causal blocks)
  int64_t height = 12;  // latent height (even: patch 2x2)
  int64_t width = 12;   // latent width
  int64_t speed = 1;    // pixels per frame
  // true: start positions keep the whole clip inside the frame (no wrap-around within a
  // clip; the world of the first 30000 teacher steps, docs/toy_world.md). false (the
  // default): start positions anywhere on the torus, so any window of a longer video (the
  // causal student's 4x rollout) is distributed as a training clip.
  bool wrap_free = false;
  int64_t align = 2;    // start positions are multiples of this (2: shapes sit on the patch grid)
};

// The vocabulary of each attribute, in index order.
const std::vector<std::string>& size_names();       // small, large
const std::vector<std::string>& colour_names();     // red, green, blue, yellow
const std::vector<std::string>& shape_names();      // square, diamond, cross
const std::vector<std::string>& direction_names();  // left, right, up, down
// Every word a prompt can hold ("a", "moving" and the attribute words), sorted as listed.
std::vector<std::string> vocabulary();

struct Attributes {
  int size = 0, colour = 0, shape = 0, direction = 0;
  bool operator==(const Attributes& o) const {
    return size == o.size && colour == o.colour && shape == o.shape && direction == o.direction;
  }
};

std::string make_prompt(const Attributes& a);
// Inverse of make_prompt (case and extra spaces ignored). Throws naming the prompt and the
// word that is not understood.
Attributes parse_prompt(const std::string& prompt);
// All 96 attribute combinations, in a fixed order.
std::vector<Attributes> all_attributes();

// Latent colour vector [4] of a colour index, and the background [4].
torch::Tensor colour_vector(int colour);
torch::Tensor background_vector();
// Distance between any shape colour and the background (2.5).
double colour_distance();
// (dx, dy) pixels per frame of a direction (x right, y down) at `speed`.
std::pair<int64_t, int64_t> velocity(int direction, int64_t speed);

// The binary stamp of (shape, size): [k, k] float (1 inside), k = 5 (small) or 7 (large).
torch::Tensor stamp(int shape, int size);
// The stamp placed with its centre at pixel (x, y) on the H x W torus: [H, W] float.
torch::Tensor place(const torch::Tensor& stamp_kk, int64_t x, int64_t y, int64_t height,
                    int64_t width);

// One video [F, C, H, W] float32: the shape's centre at (x0 + t vx, y0 + t vy) mod (W, H).
torch::Tensor render(const Attributes& a, int64_t x0, int64_t y0, const WorldSpec& spec,
                     int64_t frames = -1);

struct Dataset {
  torch::Tensor latents;             // [N, F, C, H, W] float32
  std::vector<std::string> prompts;  // N
};
// N videos: prompts cycle through all_attributes() in an order shuffled by the seed (so
// every combination appears equally often), start positions uniform. Deterministic in seed.
Dataset generate(int64_t num, uint64_t seed, const WorldSpec& spec, int64_t frames = -1);
// Videos for given prompts, start positions drawn from the seed.
torch::Tensor generate_for_prompts(const std::vector<std::string>& prompts, uint64_t seed,
                                   const WorldSpec& spec, int64_t frames = -1);

// Fixed linear latent -> RGB map for previews: latents [F, C, H, W] (or [C, H, W]) ->
// uint8 [F, H*scale, W*scale, 3] (nearest-neighbour upscaling).
torch::Tensor latents_to_rgb(const torch::Tensor& latents_FCHW, int64_t scale = 8);
// The same as planar frames [F, 3, H*scale, W*scale] uint8: a trainer::PreviewFn for the
// trainers' sample sheets (TrainOptions::preview = [](auto& l) { return toy::preview_frames(l); }).
torch::Tensor preview_frames(const torch::Tensor& latents_FCHW, int64_t scale = 8);
// A PNG contact sheet: one row per video, one column per frame. latents [N, F, C, H, W] or
// [F, C, H, W]; at most max_videos rows.
void write_preview_png(const std::string& path, const torch::Tensor& latents, int64_t scale = 8,
                       int64_t max_videos = 8);
// An mp4 of one video [F, C, H, W] (fps 4: a latent frame is a step of the world).
void write_preview_mp4(const std::string& path, const torch::Tensor& latents_FCHW,
                       int64_t scale = 8, double fps = 4);

// Small deterministic RNG (splitmix64) so data and weights do not depend on LibTorch's RNG.
class SplitMix {
 public:
  explicit SplitMix(uint64_t seed) : s_(seed) {}
  uint64_t next();
  double uniform();               // [0, 1)
  double normal();                // Box-Muller
  int64_t below(int64_t n);       // [0, n)
 private:
  uint64_t s_;
};

}  // namespace causvid::toy
