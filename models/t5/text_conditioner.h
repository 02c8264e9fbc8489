// models/t5/text_conditioner.h: the one interface through which training and inference get
// prompt embeddings. Two implementations:
//   - models::UMT5TextEncoder (models/t5/umt5.h): tokenizer + umT5 encoder, the port of
//     CausVid's WanTextEncoder (causvid/models/wan/wan_wrapper.py);
//   - data::PromptCache (data/prompt_cache.h): embeddings precomputed by
//     `causvid embed-prompts` into an LMDB, so the 5.7B-parameter encoder need not be held.
// data::make_text_conditioner() picks one from flags.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace causvid::models {

class TextConditioner {
 public:
  virtual ~TextConditioner() = default;
  // [N, text_len, dim] in output_dtype(); positions past each prompt's token count
  // (its EOS included) are zero, as WanTextEncoder.forward does (`u[v:] = 0`).
  virtual torch::Tensor encode(const std::vector<std::string>& prompts) = 0;
  virtual int64_t text_len() const = 0;
  virtual int64_t dim() const = 0;
  virtual torch::ScalarType output_dtype() const = 0;
  // The module holding its weights when it runs an encoder (null for a cache or a hash):
  // what the trainer shards under text_encoder_fsdp_wrap_strategy.
  virtual std::shared_ptr<torch::nn::Module> weights() { return nullptr; }
};

}  // namespace causvid::models
