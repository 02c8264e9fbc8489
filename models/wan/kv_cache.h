// models/wan/kv_cache.h: the self-attention KV cache and the cross-attention cache of the
// causal Wan model's autoregressive inference (CausVid causal_inference.py keeps them as
// lists of dicts; here they are types, sized once and reusable across videos).
//
// Callers address tokens by their global position in the video: a forward over one block
// passes [current_start, current_end). update() writes the block's (RoPE-rotated) keys and
// values and returns the keys/values the block's queries attend to. The physical layout is
// private, which is what makes the rolling window possible without changing callers:
//   - plain cache (window_frames < 0): slot = position; attend to [0, current_end).
//   - rolling cache: the first `sink_frames` frames keep their slots forever; later frames
//     go to a ring of `window_frames` frames, evicting the oldest; queries attend to the
//     sink plus the most recent window (ordering is irrelevant: there is no mask inside the
//     cache and RoPE was applied at each token's global position before caching).
#pragma once

#include <torch/torch.h>

#include <utility>
#include <vector>

namespace causvid::models {

struct KvCacheOptions {
  int64_t batch = 1;
  int64_t num_layers = 0, num_heads = 0, head_dim = 0;
  int64_t frame_seqlen = 0;    // tokens per latent frame
  int64_t max_frames = 0;      // plain cache: capacity in frames
  int64_t window_frames = -1;  // rolling cache: ring size in frames (< 0: plain cache)
  int64_t sink_frames = 0;     // rolling cache: first frames never evicted
  torch::Dtype dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
};

class KvCache {
 public:
  explicit KvCache(const KvCacheOptions& opts);
  const KvCacheOptions& options() const { return opts_; }
  bool rolling() const { return opts_.window_frames >= 0; }
  int64_t capacity_tokens() const { return capacity_; }
  // Writes k_BLNK, v_BLNK of global tokens [start, end) into `layer` (in place, in the
  // caller's grad mode) and returns (K, V) [B, S, N, K] to attend to: views of the storage,
  // or copies when the write carries gradient (so later writes cannot invalidate them). Throws if a plain cache would overflow or the block is not
  // frame-aligned for a rolling cache.
  std::pair<torch::Tensor, torch::Tensor> update(int64_t layer, const torch::Tensor& k_BLNK,
                                                 const torch::Tensor& v_BLNK, int64_t start,
                                                 int64_t end);
  // The keys/values a block at [start, end) attends to besides its own, as they are now:
  // a view of the prefix for a plain cache, a copy for a rolling one (its ring is
  // overwritten later). For recomputation in backward (AttnSpec::past_k).
  std::pair<torch::Tensor, torch::Tensor> past(int64_t layer, int64_t start, int64_t end) const;
  // Forget everything so the cache serves a new video: fresh zero storage (which also drops
  // any autograd history and leaves earlier views, e.g. past(), on the old storage).
  void reset();
  int64_t bytes() const;

 private:
  KvCacheOptions opts_;
  int64_t capacity_ = 0, sink_tokens_ = 0, ring_tokens_ = 0;
  int64_t high_water_ = 0;  // largest current_end seen since reset
  std::vector<torch::Tensor> k_, v_;
};

// Cross-attention keys/values per layer; the context is fixed per prompt, so they are
// computed on the first call and reused until reset() (e.g. when the prompt changes).
struct CrossAttnCache {
  std::vector<torch::Tensor> k, v;  // [B, text_len, N, K] per layer
  bool valid = false;
  void reset() {
    k.clear();
    v.clear();
    valid = false;
  }
};

}  // namespace causvid::models
