// models/common/rope.h: Wan2.1's 3-axis rotary position embedding as precomputed cos/sin
// tables (the reference builds complex float64 tables and rotates in float64 on every call;
// we build the tables once per grid, in float64, and rotate as one complex64 multiply).
// Port of wan/modules/model.py rope_params + rope_apply. Pairs are interleaved
// (x[2p], x[2p+1]); the K/2 pairs split into frame/height/width axes as
// Pf = P - 2*(P/3), Ph = Pw = P/3, with omega_a,j = 10000^(-j/Pa).
#pragma once

#include <torch/torch.h>

namespace causvid::models {

struct RopeTable {
  torch::Tensor rot;  // [L, K/2] complex64 cos + i sin, L = F*h*w tokens (frame-major)
};

// Table for a grid of F frames starting at frame `frame_offset`, h x w tokens per frame.
RopeTable rope_table(int64_t head_dim, int64_t F, int64_t h, int64_t w, int64_t frame_offset,
                     const torch::Device& device);

// x_BLNK [B,L,N,K] rotated with table [L,K/2] (same angles for every head).
torch::Tensor apply_rope(const torch::Tensor& x_BLNK, const RopeTable& table);

}  // namespace causvid::models
