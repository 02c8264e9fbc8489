// trainer/activation_plan.cpp: see activation_plan.h.
#include "trainer/activation_plan.h"

#include <c10/util/Exception.h>

#include "models/wan/presets.h"

namespace causvid::trainer {

ActivationPlan plan_activations(const core::Config& c) {
  const auto w = models::wan_config(c);
  const auto& s = c.image_or_video_shape;
  TORCH_CHECK(s.size() == 5, c.source, ": key 'image_or_video_shape': want [B, F, C, H, W]");
  const int64_t B = c.batch_size, F = s[1];
  const int64_t fs = (s[3] / w.patch_size[1]) * (s[4] / w.patch_size[2]);  // tokens per frame
  const int64_t bytes = c.mixed_precision ? 2 : 4;
  const int64_t per_token = 16 * w.dim + 2 * w.ffn_dim;  // one layer, not checkpointed
  // A forward with grad over `tokens` tokens (the whole sequence attends at once).
  auto forward = [&](int64_t tokens) {
    if (c.gradient_checkpointing)
      return bytes * tokens * (w.num_layers * w.dim + per_token);
    return bytes * tokens * w.num_layers * per_token;
  };
  ActivationPlan p;
  const int64_t T = B * F * fs;
  const std::string& st = c.distillation_loss;
  if (st == "self_forcing") {
    const int64_t nfpb = c.num_frame_per_block, Tb = B * nfpb * fs;
    const int64_t R = c.long_rollout_frames > 0 ? c.long_rollout_frames : c.num_training_frames;
    const auto [win, sink] = c.attention_window();
    const int64_t window = win > 0 ? win + sink : R;
    const bool rolling = win > 0;
    int64_t elems = 0, recompute = 0;
    for (int64_t b = R / nfpb - F / nfpb; b < R / nfpb; ++b) {  // blocks with gradient
      const int64_t keys = std::min((b + 1) * nfpb, window) * B * fs;
      if (c.gradient_checkpointing) {
        // Block inputs, and the past keys/values: copies of a ring (a plain cache's views
        // keep the whole cache alive instead: counted below).
        elems += w.num_layers * (Tb * w.dim + (rolling ? 2 * keys * w.dim : 0));
        recompute = std::max(recompute, Tb * per_token + 2 * keys * w.dim);
      } else {
        elems += w.num_layers * (Tb * per_token + 2 * keys * w.dim);  // + its K/V copies
      }
    }
    // The rollout's plain KV cache stays alive until the backward (views of it are saved).
    const int64_t cache = c.gradient_checkpointing && !rolling
                              ? 2 * w.num_layers * B * R * fs * w.dim
                              : 0;
    p.generator_step = bytes * (elems + recompute + cache);
    p.critic_step = forward(T);
    p.detail = "self-forcing generator: the exit calls of the last " + std::to_string(F) +
               " frames with the keys/values they attend to";
  } else if (st == "teacher_forcing") {
    p.generator_step = forward(c.teacher_forcing ? 2 * T : T);
    p.detail = c.teacher_forcing ? "teacher forcing: clean + noisy tokens" : "noisy tokens";
  } else {
    p.generator_step = forward(T);
    if (c.is_dmd()) p.critic_step = forward(T);
    p.detail = "one forward with grad over the clip";
  }
  if (c.gradient_checkpointing) p.detail += "; gradient checkpointing on";
  return p;
}

}  // namespace causvid::trainer
