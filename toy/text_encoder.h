// toy/text_encoder.h: the toy world's frozen text encoder: a word-level tokenizer over the
// toy vocabulary (toy/world.h) and the real umT5 encoder architecture (models/t5/umt5.h) at
// a small size (dim 64 = the toy DiT's text_dim, 2 layers, 4 heads, FFN 128), with weights
// drawn from a fixed seed by our own splitmix64 RNG (so they never change with the LibTorch
// version). Same output contract as CausVid's WanTextEncoder: [N, text_len, 64] with rows
// past each prompt's token count (EOS included) zero.
//
// Selected where a config says text_encoder_path: toy (registered by register_builtins()).
// Tokens: 0 <pad>, 1 </s> (EOS), 2 <unk>, then the vocabulary words in order. Words are the
// lower-cased alphanumeric runs of the prompt; unknown words map to <unk> (a negative prompt
// may say anything); prompts longer than text_len - 1 words are truncated (EOS kept).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/t5/text_conditioner.h"
#include "models/t5/umt5.h"

namespace causvid::toy {

constexpr uint64_t kTextEncoderSeed = 20240613;

class ToyTokenizer {
 public:
  explicit ToyTokenizer(int64_t text_len = 16);
  struct Output {
    torch::Tensor ids, mask;       // int64 [N, text_len]
    std::vector<int64_t> lengths;  // tokens incl. EOS
  };
  Output operator()(const std::vector<std::string>& prompts) const;
  int64_t vocab_size() const { return 3 + static_cast<int64_t>(words_.size()); }
  int64_t text_len() const { return text_len_; }

 private:
  std::vector<std::string> words_;
  int64_t text_len_;
};

// The encoder config: vocab 32 (>= the tokenizer's), dim 64, 2 layers.
models::UMT5Config toy_umt5_config();
// The encoder with its fixed-seed weights, frozen, eval mode.
models::UMT5Encoder make_toy_umt5(uint64_t seed = kTextEncoderSeed);

class ToyTextEncoder : public models::TextConditioner {
 public:
  explicit ToyTextEncoder(int64_t text_len = 16,
                          torch::ScalarType output_dtype = torch::kFloat32);
  torch::Tensor encode(const std::vector<std::string>& prompts) override;
  int64_t text_len() const override { return tokenizer_.text_len(); }
  int64_t dim() const override { return encoder_->config().dim; }
  torch::ScalarType output_dtype() const override { return output_dtype_; }
  const ToyTokenizer& tokenizer() const { return tokenizer_; }
  std::shared_ptr<torch::nn::Module> weights() override { return encoder_.ptr(); }

 private:
  ToyTokenizer tokenizer_;
  models::UMT5Encoder encoder_;
  torch::ScalarType output_dtype_;
};

std::unique_ptr<models::TextConditioner> make_toy_text_conditioner(
    int64_t text_len = 16, torch::ScalarType output_dtype = torch::kFloat32);

// Registers the toy world's parts with the lower layers: the text encoder "toy"
// (data::register_text_encoder). Called once at startup by the causvid main and the test
// main.
void register_builtins();

}  // namespace causvid::toy
