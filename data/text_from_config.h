// data/text_from_config.h: the text conditioning a config describes (prompt cache, or the
// umT5 encoder + tokenizer, or a registered encoder such as the toy's), sized to the
// model's text_len. One place for the trainer, the toy pipeline and the toy sampler.
#pragma once

#include <memory>

#include "core/config.h"
#include "data/prompt_cache.h"
#include "models/wan/presets.h"

namespace causvid::data {

// The encoder runs on `device`; embeddings come back on it.
inline std::unique_ptr<models::TextConditioner> text_conditioner_from_config(
    const core::Config& c, torch::Device device = torch::kCPU) {
  TextConditionerOptions o;
  o.device = device;
  o.cache_dir = c.prompt_cache;
  o.encoder_path = c.text_encoder_file();
  o.tokenizer_path = c.tokenizer_dir();
  const auto wc = models::wan_config(c);
  o.text_len = wc.text_len;
  o.text_dim = wc.text_dim;
  return make_text_conditioner(o);
}

}  // namespace causvid::data
