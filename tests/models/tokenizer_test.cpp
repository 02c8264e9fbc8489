// tests/models/tokenizer_test.cpp: Wan's prompt cleaning, UTF-8 validation, and the
// sentencepiece tokenizer (linked directly) inside this LibTorch binary
// (the fixture's own spiece.model; ids are checked by the umt5_tokenizer fixture).
#include "models/t5/tokenizer.h"

#include <filesystem>

#include "core/fs.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

std::string fixture_spm() {
  return testing::source_dir() + "/tests/fixtures/umt5_tok_spm300_L64/spiece.model";
}

TEST(PromptClean, WanRules) {
  using models::clean_prompt;
  EXPECT_EQ(clean_prompt("   a  dog\trunning \n on the   beach   "), "a dog running on the beach");
  EXPECT_EQ(clean_prompt("Tom &amp; Jerry"), "Tom & Jerry");
  EXPECT_EQ(clean_prompt("&amp;lt;b&amp;gt;"), "<b>");  // unescaped twice
  EXPECT_EQ(clean_prompt("&lt;b&gt; &#65;&#x42; x&nbsp;y"), "<b> AB x y");
  EXPECT_EQ(clean_prompt("a &unknown; b"), "a &unknown; b");
  EXPECT_EQ(clean_prompt("\xEF\xBC\xA6\xEF\xBD\x95\xE3\x80\x80\xE2\x80\x9Cq\xE2\x80\x9D"),
            "Fu \"q\"");  // fullwidth F u, U+3000, curly double quotes
  EXPECT_EQ(clean_prompt("it\xE2\x80\x99s"), "it's");
  // Chinese fullwidth comma -> ','; other CJK untouched.
  EXPECT_EQ(clean_prompt("\xE8\x89\xB2\xE8\xB0\x83\xEF\xBC\x8C\xE8\xBF\x87"),
            "\xE8\x89\xB2\xE8\xB0\x83,\xE8\xBF\x87");
  EXPECT_EQ(clean_prompt(" \t\n"), "");
  testing::expect_error_contains([] { clean_prompt("ab\xFF"); }, {"invalid UTF-8", "byte 2"});
}

TEST(PromptClean, Utf8Validation) {
  size_t bad = 0;
  EXPECT_TRUE(models::is_valid_utf8("plain \xE4\xB8\xAD \xF0\x9F\x98\x80"));
  EXPECT_FALSE(models::is_valid_utf8("a\xC0\xAF", &bad));  // overlong '/'
  EXPECT_EQ(bad, 1u);
  EXPECT_FALSE(models::is_valid_utf8("\xED\xA0\x80"));       // surrogate
  EXPECT_FALSE(models::is_valid_utf8("\xE4\xB8"));           // truncated
  EXPECT_FALSE(models::is_valid_utf8("\xF4\x90\x80\x80"));   // > U+10FFFF
}

TEST(UMT5Tokenizer, LoadsThroughShimInTestBinary) {
  models::UMT5Tokenizer tok(fixture_spm(), 16);
  EXPECT_EQ(tok.vocab_size(), 300);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.unk_id(), 2);
  auto b = tok({"a dog running on the beach", "", std::string(200, 'x')});
  EXPECT_EQ(b.ids.sizes(), torch::IntArrayRef({3, 16}));
  // Row 0: ids then EOS then pad zeros; the mask covers ids + EOS.
  int64_t n0 = b.lengths[0];
  EXPECT_GT(n0, 2);
  EXPECT_EQ(b.ids[0][n0 - 1].item<int64_t>(), 1);
  EXPECT_EQ(b.mask[0].sum().item<int64_t>(), n0);
  EXPECT_EQ(b.ids[0].narrow(0, n0, 16 - n0).abs().sum().item<int64_t>(), 0);
  // Empty prompt -> [1, 0, ...].
  EXPECT_EQ(b.lengths[1], 1);
  EXPECT_EQ(b.ids[1][0].item<int64_t>(), 1);
  // Truncated: 15 ids + EOS.
  EXPECT_EQ(b.lengths[2], 16);
  EXPECT_EQ(b.ids[2][15].item<int64_t>(), 1);
  EXPECT_EQ(b.mask[2].sum().item<int64_t>(), 16);
  EXPECT_FALSE(tok.id_to_piece(b.ids[0][0].item<int64_t>()).empty());
}

TEST(UMT5Tokenizer, FolderWithSpieceModel) {
  testing::TempDir dir;
  std::filesystem::copy_file(fixture_spm(), dir.file("spiece.model"));
  models::UMT5Tokenizer a(dir.path(), 8), b(fixture_spm(), 8);
  EXPECT_TRUE(torch::equal(a({"a cat"}).ids, b({"a cat"}).ids));
}

TEST(UMT5Tokenizer, MissingOrBadModelIsClearError) {
  testing::TempDir dir;
  testing::expect_error_contains([&] { models::UMT5Tokenizer t(dir.file("nope.model")); },
                                 {dir.file("nope.model"), "tokenizer model not found"});
  testing::expect_error_contains([&] { models::UMT5Tokenizer t(dir.path()); },
                                 {dir.file("spiece.model"), "not found"});
  core::write_file_atomic(dir.file("junk.model"), "this is not a protobuf");
  testing::expect_error_contains([&] { models::UMT5Tokenizer t(dir.file("junk.model")); },
                                 {dir.file("junk.model"), "not a sentencepiece model"});
}

TEST(UMT5Tokenizer, ByteStandIn) {
  auto t = models::UMT5Tokenizer::bytes(6);
  auto b = (*t)({"  ab  "});
  EXPECT_EQ(b.lengths[0], 3);
  EXPECT_EQ(b.ids[0][0].item<int64_t>(), 'a' + 3);
  EXPECT_EQ(b.ids[0][2].item<int64_t>(), 1);
  EXPECT_EQ(t->vocab_size(), 259);
}

}  // namespace
}  // namespace causvid
