// checks/t5_checks.cpp: fixture kinds umt5_encoder and umt5_tokenizer
// (../shared/fixtures/KINDS.vae_t5.md): T5Encoder(ids, mask) + WanTextEncoder's zeroing, and
// HuggingfaceTokenizer(seq_len, clean='whitespace') with the fixture's own spiece.model.
#include "checks/kinds.h"
#include "core/state_dict.h"
#include "models/t5/tokenizer.h"
#include "models/t5/umt5.h"

namespace causvid::checks {

void check_umt5_encoder(const Fixture& f, FixtureReport& r) {
  auto cfg = models::UMT5Config::from_json(f.meta.at("config"));
  models::UMT5Encoder enc(cfg);
  core::LoadOptions opt;
  opt.source = f.dir + "/weights.safetensors";
  core::load_state_dict(*enc, f.weights->all(), opt);
  f.to_place(*enc);
  enc->eval();
  torch::NoGradGuard no_grad;
  auto ids = f.in("in.ids"), mask = f.in("in.mask");
  auto ctx = models::zero_past_length(enc->forward(ids, mask), mask);
  r.compare("out.context", ctx);
  if (f.has("out.rel_bucket")) {
    const int64_t l = ids.size(1);
    r.compare("out.rel_bucket",
              models::relative_position_bucket(l, l, cfg.num_buckets, true, cfg.max_dist));
  }
}

void check_umt5_tokenizer(const Fixture& f, FixtureReport& r) {
  const auto& m = f.meta;
  const int64_t seq_len = m.at("seq_len").get<int64_t>();
  models::UMT5Tokenizer tok(f.dir + "/" + m.value("spiece", std::string("spiece.model")),
                            seq_len);
  TORCH_CHECK(tok.vocab_size() == m.at("vocab_size").get<int64_t>(), f.dir,
              ": tokenizer vocab ", tok.vocab_size(), ", meta says ", m.at("vocab_size"));
  auto prompts = m.at("prompts").get<std::vector<std::string>>();
  if (m.contains("cleaned")) {
    auto want = m.at("cleaned").get<std::vector<std::string>>();
    for (size_t i = 0; i < prompts.size() && i < want.size(); ++i) {
      auto got = models::clean_prompt(prompts[i]);
      if (got != want[i])
        r.fail("cleaned[" + std::to_string(i) + "]: got '" + got + "', want '" + want[i] + "'");
    }
  }
  auto b = tok(prompts);
  r.compare("out.ids", b.ids);
  r.compare("out.mask", b.mask);
}

}  // namespace causvid::checks

// Kinds `hf_umt5_encoder` / `hf_umt5_tokenizer` (tests/fixtures/KINDS.layout_vae_t5.md): a
// diffusers pipeline folder's text_encoder/ (transformers UMT5EncoderModel) and tokenizer/,
// loaded as text_encoder_path / tokenizer_path load them.
#include "models/t5/t5_layouts.h"

namespace causvid::checks {

void check_hf_umt5_encoder(const Fixture& f, FixtureReport& r) {
  const std::string folder = f.dir + "/" + f.meta.value("folder", std::string("model"));
  auto enc = models::load_umt5_encoder(models::read_umt5_weights(folder), folder);
  f.to_place(*enc);
  torch::NoGradGuard no_grad;
  auto ids = f.in("in.input_ids"), mask = f.in("in.attention_mask");
  auto h = enc->forward(ids, mask);
  r.compare("out.last_hidden_state", h);
  r.compare("out.prompt_embeds", models::zero_past_length(h.clone(), mask));
}

void check_hf_umt5_tokenizer(const Fixture& f, FixtureReport& r) {
  const std::string folder = f.dir + "/" + f.meta.value("folder", std::string("model"));
  models::UMT5Tokenizer tok(folder, f.meta.at("text_len").get<int64_t>());
  auto b = tok(f.meta.at("prompts").get<std::vector<std::string>>());
  r.compare("out.ids", b.ids);
  r.compare("out.mask", b.mask);
}

}  // namespace causvid::checks
