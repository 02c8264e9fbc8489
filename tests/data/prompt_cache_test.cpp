// tests/data/prompt_cache_test.cpp: prompt files, the LMDB prompt-embedding cache and the
// two TextConditioner implementations (encoder vs cache give the same embeddings), and the
// `causvid embed-prompts` command with its errors.
#include "data/prompt_cache.h"

#include <algorithm>

#include "core/fs.h"
#include "core/safetensors.h"
#include "core/state_dict.h"
#include "models/t5/umt5.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

const char* kNegative =
    "\xE8\x89\xB2\xE8\xB0\x83\xE8\x89\xB3\xE4\xB8\xBD\xEF\xBC\x8C\xE8\xBF\x87\xE6\x9B\x9D";

models::UMT5TextEncoder tiny_encoder(int64_t text_len = 24) {
  torch::manual_seed(7);
  auto tok = std::shared_ptr<models::UMT5Tokenizer>(models::UMT5Tokenizer::bytes(text_len));
  models::UMT5Encoder enc(models::UMT5Config::tiny(tok->vocab_size()));
  enc->eval();
  return models::UMT5TextEncoder(enc, tok);
}

TEST(PromptFile, ReadsLinesAndRejectsBadOnes) {
  testing::TempDir dir;
  core::write_file_atomic(dir.file("ok.txt"),
                          std::string("\xEF\xBB\xBF" "a cat\r\n") + kNegative + "\nlast");
  auto p = data::read_prompt_file(dir.file("ok.txt"));
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0], "a cat");
  EXPECT_EQ(p[1], kNegative);
  EXPECT_EQ(p[2], "last");
  core::write_file_atomic(dir.file("utf8.txt"), "fine\nbro\xC3ken\n");
  testing::expect_error_contains([&] { data::read_prompt_file(dir.file("utf8.txt")); },
                                 {dir.file("utf8.txt") + ":2", "invalid UTF-8"});
  core::write_file_atomic(dir.file("empty.txt"), "a\nb\n\nc\n");
  testing::expect_error_contains([&] { data::read_prompt_file(dir.file("empty.txt")); },
                                 {dir.file("empty.txt") + ":3", "empty prompt line"});
  core::write_file_atomic(dir.file("blank.txt"), "a\n \t\n");
  testing::expect_error_contains([&] { data::read_prompt_file(dir.file("blank.txt")); },
                                 {dir.file("blank.txt") + ":2", "empty prompt line"});
  testing::expect_error_contains([&] { data::read_prompt_file(dir.file("none.txt")); },
                                 {dir.file("none.txt"), "not found"});
}

TEST(PromptCache, MatchesEncoderAndPadsAtLoad) {
  testing::TempDir dir;
  auto enc = tiny_encoder();
  std::vector<std::string> prompts = {"a cat playing piano", kNegative, "x",
                                      std::string(100, 'z'), "a  cat   playing piano"};
  data::embed_prompts(enc, prompts, dir.file("cache"), torch::kFloat32, 2, false, "tiny");
  data::PromptCache cache(dir.file("cache"));
  EXPECT_EQ(cache.size(), 4);  // the last prompt cleans to the first
  EXPECT_EQ(cache.text_len(), 24);
  EXPECT_EQ(cache.dim(), 32);
  std::vector<int64_t> lengths;
  auto want = enc.encode(prompts, &lengths);
  auto got = cache.encode(prompts);
  // Equal up to float summation order (the encoder trims each batch to its longest prompt).
  EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5)) << (got - want).abs().max();
  EXPECT_EQ(cache.length("x"), 2);  // 'x' + EOS
  EXPECT_EQ(cache.length(std::string(100, 'z')), 24);
  EXPECT_EQ(got[2].narrow(0, 2, 22).abs().max().item<float>(), 0.f);
  // Through the factory, as loaders use it.
  data::TextConditionerOptions o;
  o.cache_dir = dir.file("cache");
  o.text_len = 24;
  auto cond = data::make_text_conditioner(o);
  EXPECT_TRUE(torch::allclose(cond->encode({"x"}), want.narrow(0, 2, 1), 1e-5, 1e-5));
  // A prompt not in the cache names the prompt.
  testing::expect_error_contains([&] { cache.encode({"a cat", "a dog on the moon"}); },
                                 {"prompt not in the cache", "'a cat'", dir.file("cache")});
  // Existing output without --overwrite.
  testing::expect_error_contains(
      [&] { data::embed_prompts(enc, prompts, dir.file("cache"), torch::kFloat32, 2, false, ""); },
      {dir.file("cache"), "already exists"});
}

TEST(PromptCache, Bf16Storage) {
  testing::TempDir dir;
  auto enc = tiny_encoder();
  data::embed_prompts(enc, {"a red car"}, dir.file("c"), torch::kBFloat16, 4, false, "tiny");
  data::PromptCache cache(dir.file("c"));
  EXPECT_EQ(cache.stored_dtype(), torch::kBFloat16);
  auto want = enc.encode({"a red car"}).to(torch::kBFloat16).to(torch::kFloat32);  // same batch
  EXPECT_TRUE(torch::equal(cache.encode({"a red car"}), want));
  testing::expect_error_contains([] { data::parse_embed_dtype("--dtype", "int8"); },
                                 {"--dtype", "int8", "bf16"});
  testing::expect_error_contains([&] { data::PromptCache c(dir.file("nothing")); },
                                 {dir.file("nothing")});
}

TEST(EmbedPromptsCli, TinyPresetWithSpmTokenizer) {
  testing::TempDir dir;
  std::string longp;
  for (int i = 0; i < 30; ++i) longp += "a dog ";
  core::write_file_atomic(dir.file("p.txt"),
                          std::string("a dog running\n") + kNegative + "\n" + longp + "\n");
  const std::string spm = testing::source_dir() + "/tests/fixtures/umt5_tok_spm300_L64/spiece.model";
  std::string out;
  int rc = testing::run_command(testing::causvid_binary() + " embed-prompts --prompts " +
                                    dir.file("p.txt") + " --out " + dir.file("cache") +
                                    " --preset tiny --tokenizer " + spm +
                                    " --text-len 32 --batch-size 1",
                                &out);
  ASSERT_EQ(rc, 0) << out;
  data::PromptCache cache(dir.file("cache"));
  EXPECT_EQ(cache.size(), 3);
  EXPECT_EQ(cache.text_len(), 32);
  EXPECT_EQ(cache.stored_dtype(), torch::kBFloat16);
  EXPECT_TRUE(cache.contains(kNegative));
  EXPECT_GT(cache.length(kNegative), 2);
  EXPECT_EQ(cache.length(longp), 32);  // truncated to text_len
}

TEST(EmbedPromptsCli, EncoderWeightsMatchInProcessEncoder) {
  testing::TempDir dir;
  const std::string spm = testing::source_dir() + "/tests/fixtures/umt5_tok_spm300_L64/spiece.model";
  torch::manual_seed(11);
  models::UMT5Encoder enc(models::UMT5Config::tiny(300));
  core::save_safetensors(dir.file("enc.safetensors"), core::state_dict(*enc));
  core::write_file_atomic(dir.file("p.txt"), "a cat playing piano\nTom &amp; Jerry\n");
  std::string out;
  int rc = testing::run_command(testing::causvid_binary() + " embed-prompts --prompts " +
                                    dir.file("p.txt") + " --out " + dir.file("cache") +
                                    " --encoder " + dir.file("enc.safetensors") +
                                    " --tokenizer " + spm + " --text-len 20 --dtype fp32",
                                &out);
  ASSERT_EQ(rc, 0) << out;
  data::TextConditionerOptions o;
  o.encoder_path = dir.file("enc.safetensors");
  o.tokenizer_path = spm;
  o.text_len = 20;
  auto live = data::make_text_conditioner(o);
  o.cache_dir = dir.file("cache");
  auto cached = data::make_text_conditioner(o);
  std::vector<std::string> p = {"Tom & Jerry", "a cat playing piano"};
  auto a = live->encode(p), b = cached->encode(p);
  EXPECT_EQ(b.sizes(), torch::IntArrayRef({2, 20, 32}));
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5)) << (a - b).abs().max();
}

TEST(EmbedPromptsCli, BadInputsFailWithClearMessages) {
  testing::TempDir dir;
  const std::string bin = testing::causvid_binary() + " embed-prompts --out " + dir.file("c");
  core::write_file_atomic(dir.file("p.txt"), "ok\n\nmore\n");
  std::string out;
  EXPECT_EQ(testing::run_command(bin + " --preset tiny --prompts " + dir.file("p.txt"), &out), 1);
  EXPECT_NE(out.find(dir.file("p.txt") + ":2: empty prompt line"), std::string::npos) << out;
  core::write_file_atomic(dir.file("q.txt"), "ok\n");
  EXPECT_EQ(testing::run_command(bin + " --preset tiny --prompts " + dir.file("q.txt") +
                                     " --tokenizer " + dir.file("missing.model"),
                                 &out),
            1);
  EXPECT_NE(out.find(dir.file("missing.model") + ": tokenizer model not found"),
            std::string::npos)
      << out;
  EXPECT_EQ(testing::run_command(bin + " --prompts " + dir.file("q.txt"), &out), 1);
  EXPECT_NE(out.find("--tokenizer: required"), std::string::npos) << out;
  EXPECT_FALSE(core::file_exists(dir.file("c")));
}

}  // namespace
}  // namespace causvid

namespace causvid {

// A name registered with data::register_text_encoder selects its factory (the test main
// registers the builtins: inference's "hash", the toy's "toy"); other names stay paths.
TEST(PromptCache, RegisteredTextEncodersSelectedByName) {
  auto names = data::text_encoder_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "hash"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "toy"), names.end());
  data::register_text_encoder("test-fixed", [](const data::TextConditionerOptions& o) {
    return data::find_text_encoder("hash")->operator()(o);
  });
  data::TextConditionerOptions o;
  o.encoder_path = "test-fixed";
  o.text_len = 5;
  o.text_dim = 8;
  auto c = data::make_text_conditioner(o);
  EXPECT_EQ(c->dim(), 8);
  EXPECT_EQ(c->encode({"a b"}).sizes(), (std::vector<int64_t>{1, 5, 8}));
  o.encoder_path = "toy";
  EXPECT_EQ(data::make_text_conditioner(o)->text_len(), 5);
  EXPECT_EQ(data::find_text_encoder("no-such-encoder"), nullptr);
}

}  // namespace causvid
