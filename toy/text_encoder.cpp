// toy/text_encoder.cpp: see text_encoder.h.
#include "toy/text_encoder.h"

#include <cctype>
#include <cmath>

#include "data/prompt_cache.h"
#include "toy/world.h"

namespace causvid::toy {

ToyTokenizer::ToyTokenizer(int64_t text_len) : words_(vocabulary()), text_len_(text_len) {
  TORCH_CHECK(text_len >= 2, "toy tokenizer: text_len ", text_len, ", want >= 2");
}

ToyTokenizer::Output ToyTokenizer::operator()(const std::vector<std::string>& prompts) const {
  const int64_t n = static_cast<int64_t>(prompts.size());
  Output o;
  o.ids = torch::zeros({n, text_len_}, torch::kInt64);
  o.mask = torch::zeros({n, text_len_}, torch::kInt64);
  auto ids = o.ids.accessor<int64_t, 2>();
  auto mask = o.mask.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> toks;
    std::string cur;
    auto flush = [&] {
      if (cur.empty()) return;
      int64_t id = 2;
      for (size_t w = 0; w < words_.size(); ++w)
        if (words_[w] == cur) id = 3 + static_cast<int64_t>(w);
      toks.push_back(id);
      cur.clear();
    };
    for (char ch : prompts[i]) {
      unsigned char c = static_cast<unsigned char>(ch);
      if (std::isalnum(c))
        cur += static_cast<char>(std::tolower(c));
      else
        flush();
    }
    flush();
    if (static_cast<int64_t>(toks.size()) > text_len_ - 1) toks.resize(text_len_ - 1);
    toks.push_back(1);  // EOS
    for (size_t t = 0; t < toks.size(); ++t) {
      ids[i][t] = toks[t];
      mask[i][t] = 1;
    }
    o.lengths.push_back(static_cast<int64_t>(toks.size()));
  }
  return o;
}

models::UMT5Config toy_umt5_config() {
  models::UMT5Config c;
  c.vocab = 32;
  c.dim = 64;
  c.dim_attn = 64;
  c.dim_ffn = 128;
  c.num_heads = 4;
  c.num_layers = 2;
  c.num_buckets = 32;
  return c;
}

models::UMT5Encoder make_toy_umt5(uint64_t seed) {
  models::UMT5Encoder enc(toy_umt5_config());
  SplitMix rng(seed);
  torch::NoGradGuard ng;
  // Parameters in registration order (deterministic); scale per kind: embeddings N(0,1),
  // relative position tables N(0, 0.5), linear weights N(0, 1/fan_in), norm weights 1.
  for (auto& kv : enc->named_parameters()) {
    auto& p = kv.value();
    const std::string& name = kv.key();
    if (name.find("norm") != std::string::npos && p.dim() == 1) {
      p.fill_(1.0);
      continue;
    }
    double std = 1.0;
    if (name.find("pos_embedding") != std::string::npos) std = 0.5;
    else if (name.find("token_embedding") == std::string::npos) std = 1.0 / std::sqrt(double(p.size(1)));
    auto cpu = torch::empty(p.sizes(), torch::kFloat32);
    float* d = cpu.data_ptr<float>();
    for (int64_t i = 0; i < cpu.numel(); ++i) d[i] = static_cast<float>(std * rng.normal());
    p.copy_(cpu);
  }
  enc->eval();
  for (auto& p : enc->parameters()) p.set_requires_grad(false);
  return enc;
}

ToyTextEncoder::ToyTextEncoder(int64_t text_len, torch::ScalarType output_dtype)
    : tokenizer_(text_len), encoder_(make_toy_umt5()), output_dtype_(output_dtype) {
  TORCH_INTERNAL_ASSERT(tokenizer_.vocab_size() <= encoder_->config().vocab);
}

torch::Tensor ToyTextEncoder::encode(const std::vector<std::string>& prompts) {
  torch::NoGradGuard ng;
  auto tok = tokenizer_(prompts);
  auto ctx = models::zero_past_length(encoder_->forward(tok.ids, tok.mask), tok.mask);
  return ctx.to(output_dtype_);
}

std::unique_ptr<models::TextConditioner> make_toy_text_conditioner(int64_t text_len,
                                                                   torch::ScalarType output_dtype) {
  return std::make_unique<ToyTextEncoder>(text_len, output_dtype);
}

void register_builtins() {
  data::register_text_encoder("toy", [](const data::TextConditionerOptions& o) {
    return make_toy_text_conditioner(o.text_len, o.output_dtype);
  });
}

}  // namespace causvid::toy
