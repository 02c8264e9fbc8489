// models/wan/kv_cache.cpp: see kv_cache.h.
#include "models/wan/kv_cache.h"

namespace causvid::models {

KvCache::KvCache(const KvCacheOptions& o) : opts_(o) {
  TORCH_CHECK(o.batch > 0 && o.num_layers > 0 && o.num_heads > 0 && o.head_dim > 0 &&
                  o.frame_seqlen > 0,
              "KvCache: batch, num_layers, num_heads, head_dim, frame_seqlen must be positive");
  if (o.window_frames >= 0) {
    TORCH_CHECK(o.window_frames > 0, "KvCache: window_frames must be > 0 for a rolling cache");
    TORCH_CHECK(o.sink_frames >= 0, "KvCache: sink_frames must be >= 0");
    sink_tokens_ = o.sink_frames * o.frame_seqlen;
    ring_tokens_ = o.window_frames * o.frame_seqlen;
    capacity_ = sink_tokens_ + ring_tokens_;
  } else {
    TORCH_CHECK(o.max_frames > 0, "KvCache: max_frames must be > 0");
    capacity_ = o.max_frames * o.frame_seqlen;
  }
  auto opt = torch::TensorOptions().dtype(o.dtype).device(o.device);
  for (int64_t l = 0; l < o.num_layers; ++l) {
    k_.push_back(torch::zeros({o.batch, capacity_, o.num_heads, o.head_dim}, opt));
    v_.push_back(torch::zeros({o.batch, capacity_, o.num_heads, o.head_dim}, opt));
  }
}

void KvCache::reset() {
  // Drops any autograd history (a rollout with gradient) so videos never share a graph.
  for (auto& t : k_) t = torch::zeros_like(t.detach());
  for (auto& t : v_) t = torch::zeros_like(t.detach());
  high_water_ = 0;
}

std::pair<torch::Tensor, torch::Tensor> KvCache::past(int64_t layer, int64_t start,
                                                      int64_t end) const {
  TORCH_CHECK(layer >= 0 && layer < opts_.num_layers, "KvCache: layer ", layer, " out of range");
  torch::NoGradGuard ng;
  const auto& K = k_[layer];
  const auto& V = v_[layer];
  if (!rolling()) return {K.slice(1, 0, start).detach(), V.slice(1, 0, start).detach()};
  // The valid slots after the block's write, minus the block's own ones.
  const int64_t valid = std::min(end, capacity_);
  std::vector<bool> own(static_cast<size_t>(valid), false);
  for (int64_t g = start; g < end; ++g) {
    const int64_t phys = g < sink_tokens_ ? g : sink_tokens_ + (g - sink_tokens_) % ring_tokens_;
    if (phys < valid) own[static_cast<size_t>(phys)] = true;
  }
  std::vector<int64_t> slots;
  for (int64_t p = 0; p < valid; ++p)
    if (!own[static_cast<size_t>(p)]) slots.push_back(p);
  auto idx = torch::tensor(slots, torch::kLong).to(K.device());
  return {K.slice(1, 0, valid).index_select(1, idx), V.slice(1, 0, valid).index_select(1, idx)};
}

int64_t KvCache::bytes() const {
  int64_t n = 0;
  for (const auto& t : k_) n += t.numel() * t.element_size();
  return 2 * n;
}

std::pair<torch::Tensor, torch::Tensor> KvCache::update(int64_t layer, const torch::Tensor& k,
                                                        const torch::Tensor& v, int64_t start,
                                                        int64_t end) {
  TORCH_CHECK(layer >= 0 && layer < opts_.num_layers, "KvCache: layer ", layer, " out of range");
  TORCH_CHECK(0 <= start && start < end && k.size(1) == end - start && v.sizes() == k.sizes(),
              "KvCache: block [", start, ", ", end, ") does not match keys ", k.sizes());
  TORCH_CHECK(k.size(0) == opts_.batch && k.size(2) == opts_.num_heads &&
                  k.size(3) == opts_.head_dim,
              "KvCache: keys ", k.sizes(), " do not fit a cache for batch ", opts_.batch, ", ",
              opts_.num_heads, " heads of ", opts_.head_dim);
  auto& K = k_[layer];
  auto& V = v_[layer];
  auto kk = k.to(K.scalar_type()), vv = v.to(V.scalar_type());
  // Writes are in place in the caller's grad mode, as the reference's
  // kv_cache["k"][:, a:b] = roped_key: a block computed with gradient (the self-forcing
  // rollout's exit step) leaves its autograd history on the storage, and a later no-grad
  // write of the same slots (the block's clean re-run) changes the values but not that
  // history, so later blocks' gradients reach the exit call's keys as in Self-Forcing.
  // Under grad the returned keys are copies (Wan's flash attention copies them through
  // torch.cat), which later in-place writes cannot invalidate for the backward.
  const bool copy = torch::GradMode::is_enabled() && (K.requires_grad() || kk.requires_grad());
  auto out = [&](int64_t n) -> std::pair<torch::Tensor, torch::Tensor> {
    if (copy) return {K.slice(1, 0, n).clone(), V.slice(1, 0, n).clone()};
    return {K.slice(1, 0, n), V.slice(1, 0, n)};
  };
  if (!rolling()) {
    TORCH_CHECK(end <= capacity_, "KvCache: token ", end, " beyond the capacity of ", capacity_,
                " tokens (", opts_.max_frames, " frames); use a rolling cache for longer videos");
    K.slice(1, start, end).copy_(kk);
    V.slice(1, start, end).copy_(vv);
    if (layer == 0) high_water_ = std::max(high_water_, end);
    return out(end);
  }
  TORCH_CHECK(start % opts_.frame_seqlen == 0 && end % opts_.frame_seqlen == 0,
              "KvCache: rolling cache needs frame-aligned blocks, got [", start, ", ", end, ")");
  TORCH_CHECK(end - start <= ring_tokens_, "KvCache: block of ", end - start,
              " tokens larger than the rolling window of ", ring_tokens_);
  // Physical slot of global token g: g itself inside the sink, else a ring position.
  int64_t g = start;
  while (g < end) {
    int64_t phys, run;
    if (g < sink_tokens_) {
      phys = g;
      run = std::min(end, sink_tokens_) - g;
    } else {
      const int64_t r = (g - sink_tokens_) % ring_tokens_;
      phys = sink_tokens_ + r;
      run = std::min(end - g, ring_tokens_ - r);
    }
    K.slice(1, phys, phys + run).copy_(kk.slice(1, g - start, g - start + run));
    V.slice(1, phys, phys + run).copy_(vv.slice(1, g - start, g - start + run));
    g += run;
  }
  return out(std::min(end, capacity_));
}

}  // namespace causvid::models
