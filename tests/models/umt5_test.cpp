// tests/models/umt5_test.cpp: umT5 encoder structure (checkpoint key names), position
// buckets, padding behaviour and loading errors. Values are checked by the umt5_encoder
// fixture in the parity suite.
#include "models/t5/umt5.h"

#include "core/safetensors.h"
#include "core/state_dict.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

TEST(UMT5, ParameterNamesAreCheckpointKeys) {
  auto cfg = models::UMT5Config::tiny(100);
  models::UMT5Encoder enc(cfg);
  auto sd = core::state_dict(*enc);
  for (const char* k :
       {"token_embedding.weight", "blocks.0.norm1.weight", "blocks.0.attn.q.weight",
        "blocks.0.attn.k.weight", "blocks.0.attn.v.weight", "blocks.0.attn.o.weight",
        "blocks.0.norm2.weight", "blocks.0.ffn.gate.0.weight", "blocks.0.ffn.fc1.weight",
        "blocks.0.ffn.fc2.weight", "blocks.1.pos_embedding.embedding.weight", "norm.weight"})
    EXPECT_TRUE(sd.count(k)) << k;
  EXPECT_EQ(sd.size(), 2u + 10u * cfg.num_layers);
  int64_t n = 0;
  for (const auto& kv : sd) n += kv.second.numel();
  EXPECT_EQ(n, cfg.num_params());
  EXPECT_EQ(sd.at("blocks.1.pos_embedding.embedding.weight").sizes(),
            torch::IntArrayRef({cfg.num_buckets, cfg.num_heads}));
  auto inferred = models::UMT5Config::infer(sd, "test");
  EXPECT_EQ(inferred.str(), cfg.str());
  // umT5-XXL: 5.68B parameters in the encoder.
  EXPECT_NEAR(models::UMT5Config::xxl().num_params() / 1e9, 5.68, 0.01);
}

TEST(UMT5, BucketThresholds) {
  auto b = models::relative_position_bucket(1, 200, 32, true, 128);
  auto a = b.accessor<int64_t, 2>();
  // key j, query 0: rel = j > 0 -> 16 + bucket(n)
  const std::vector<std::pair<int, int>> want = {{1, 1},   {7, 7},   {8, 8},   {11, 8},
                                                 {12, 9},  {15, 9},  {16, 10}, {22, 10},
                                                 {23, 11}, {32, 12}, {46, 13}, {64, 14},
                                                 {90, 14}, {91, 15}, {199, 15}};
  for (auto [n, bucket] : want) EXPECT_EQ(a[0][n], 16 + bucket) << "n=" << n;
  EXPECT_EQ(a[0][0], 0);
  auto ct = models::relative_position_bucket(200, 1, 32, true, 128);
  auto c = ct.accessor<int64_t, 2>();
  for (auto [n, bucket] : want) EXPECT_EQ(c[n][0], bucket) << "n=-" << n;
}

TEST(UMT5, PaddingDoesNotChangeValidRowsAndIsZeroed) {
  torch::manual_seed(1);
  models::UMT5Encoder enc(models::UMT5Config::tiny(50));
  torch::NoGradGuard ng;
  auto ids = torch::randint(3, 50, {1, 9}, torch::kInt64);
  ids[0][8] = 1;
  auto run = [&](int64_t l) {
    auto i = torch::zeros({1, l}, torch::kInt64), m = torch::zeros({1, l}, torch::kInt64);
    i.narrow(1, 0, 9).copy_(ids);
    m.narrow(1, 0, 9).fill_(1);
    return models::zero_past_length(enc->forward(i, m), m);
  };
  auto a = run(12), b = run(30);
  EXPECT_TRUE(torch::allclose(a.narrow(1, 0, 9), b.narrow(1, 0, 9), 1e-5, 1e-5));
  EXPECT_EQ(b.narrow(1, 9, 21).abs().max().item<float>(), 0.f);
  EXPECT_GT(a.narrow(1, 0, 9).abs().max().item<float>(), 0.f);
}

TEST(UMT5, TrimmedPaddingMatchesFullLength) {
  torch::manual_seed(3);
  auto tok = std::shared_ptr<models::UMT5Tokenizer>(models::UMT5Tokenizer::bytes(40));
  models::UMT5Encoder enc(models::UMT5Config::tiny(tok->vocab_size()));
  models::UMT5TextEncoder full(enc, tok, torch::kFloat32, false);
  models::UMT5TextEncoder trimmed(enc, tok, torch::kFloat32, true);
  std::vector<std::string> p = {"a cat", "a much longer prompt here", ""};
  std::vector<int64_t> la, lb;
  auto a = full.encode(p, &la), b = trimmed.encode(p, &lb);
  EXPECT_EQ(la, lb);
  EXPECT_EQ(b.sizes(), torch::IntArrayRef({3, 40, 32}));
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5)) << (a - b).abs().max();
  EXPECT_EQ(b.narrow(1, lb[1], 40 - lb[1]).abs().max().item<float>(), 0.f);
}

TEST(UMT5, BadInputsAreClearErrors) {
  models::UMT5Encoder enc(models::UMT5Config::tiny(50));
  testing::expect_error_contains(
      [&] { enc->forward(torch::full({1, 4}, 77, torch::kInt64), torch::ones({1, 4})); },
      {"umt5 ids", "[0, 50)"});
  testing::expect_error_contains([&] { models::read_umt5_weights("/nonexistent/enc.pth"); },
                                 {"/nonexistent/enc.pth"});
  auto sd = core::state_dict(*enc);
  sd.erase("blocks.1.ffn.fc1.weight");
  testing::expect_error_contains([&] { models::load_umt5_encoder(sd, "w.safetensors"); },
                                 {"w.safetensors", "blocks.1.ffn.fc1.weight"});
  sd.erase("token_embedding.weight");
  testing::expect_error_contains([&] { models::load_umt5_encoder(sd, "w.safetensors"); },
                                 {"w.safetensors", "token_embedding.weight"});
}

TEST(UMT5, LoadsSafetensorsRoundTrip) {
  testing::TempDir dir;
  torch::manual_seed(2);
  models::UMT5Encoder a(models::UMT5Config::tiny(40));
  core::save_safetensors(dir.file("enc.safetensors"), core::state_dict(*a));
  auto b = models::load_umt5_encoder(models::read_umt5_weights(dir.file("enc.safetensors")),
                                     dir.file("enc.safetensors"));
  torch::NoGradGuard ng;
  auto ids = torch::randint(3, 40, {2, 6}, torch::kInt64);
  auto m = torch::ones({2, 6}, torch::kInt64);
  EXPECT_TRUE(torch::equal(a->forward(ids, m), b->forward(ids, m)));
  for (const auto& p : b->parameters()) EXPECT_FALSE(p.requires_grad());
}

}  // namespace
}  // namespace causvid
