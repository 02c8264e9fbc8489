// tests/core/state_dict_test.cpp: strict state-dict loading (all problems reported at once),
// select/strip prefix mapping, dtype conversion, and the CausVid model.pt path end to end.
#include "core/state_dict.h"

#include "core/tensor_io.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using testing::TempDir;

// lin.{weight,bias}, blocks.{0,1}.{weight,bias}, steps (a buffer).
struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    lin = register_module("lin", torch::nn::Linear(3, 4));
    blocks = register_module("blocks", torch::nn::ModuleList());
    for (int i = 0; i < 2; ++i) blocks->push_back(torch::nn::Linear(4, 4));
    steps = register_buffer("steps", torch::zeros({2}, torch::kInt64));
  }
  torch::nn::Linear lin{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::Tensor steps;
};
TORCH_MODULE(Tiny);

core::TensorMap random_state(int seed) {
  torch::manual_seed(seed);
  Tiny src;
  core::TensorMap sd = core::state_dict(*src);
  sd["steps"] = torch::tensor({int64_t(seed), int64_t(seed + 1)});
  return sd;
}

void expect_loaded(Tiny& m, const core::TensorMap& sd) {
  core::TensorMap got = core::state_dict(*m);
  ASSERT_EQ(got.size(), sd.size());
  for (const auto& kv : sd)
    EXPECT_TRUE(torch::equal(got.at(kv.first), kv.second.to(got.at(kv.first).scalar_type())))
        << kv.first;
}

TEST(StateDict, KeysMatchReferenceNames) {
  Tiny m;
  std::vector<std::string> keys;
  for (const auto& kv : core::state_dict(*m)) keys.push_back(kv.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"blocks.0.bias", "blocks.0.weight", "blocks.1.bias",
                                            "blocks.1.weight", "lin.bias", "lin.weight", "steps"}));
}

TEST(StateDict, StrictLoadCopiesEverything) {
  Tiny m;
  core::TensorMap sd = random_state(1);
  core::LoadReport r = core::load_state_dict(*m, sd);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.loaded, 7);
  expect_loaded(m, sd);
}

// Issue #14: integer values for float parameters and non-finite weights are refused by name.
TEST(StateDict, IntegerAndNonFiniteWeightsAreRefused) {
  Tiny m;
  auto sd = random_state(1);
  auto key = sd.begin()->first;
  auto bad = sd;
  bad[key] = torch::ones(sd[key].sizes(), torch::kLong);
  core::LoadOptions o;
  o.source = "w.safetensors";
  testing::expect_error_contains([&] { core::load_state_dict(*m, bad, o); },
                                 {"w.safetensors", "'" + key + "'", "Long", "floating-point"});
  bad = sd;
  bad[key] = sd[key].clone();
  bad[key].view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  testing::expect_error_contains([&] { core::load_state_dict(*m, bad, o); },
                                 {"w.safetensors", "'" + key + "'", "non-finite"});
}

TEST(StateDict, ReportsEveryProblemAtOnceAndLoadsNothing) {
  Tiny m;
  core::TensorMap before = core::state_dict(*m);
  for (auto& kv : before) kv.second = kv.second.clone();
  core::TensorMap sd = random_state(2);
  sd.erase("blocks.1.bias");
  sd.erase("steps");
  sd["extra.w"] = torch::zeros({1});
  sd["lin.weight"] = torch::zeros({4, 2});
  core::LoadOptions opt;
  opt.source = "ckpt.pth";
  testing::expect_error_contains(
      [&] { core::load_state_dict(*m, sd, opt); },
      {"ckpt.pth", "2 missing keys: blocks.1.bias, steps", "1 unexpected keys: extra.w",
       "1 shape mismatches: lin.weight (file [4, 2], model [4, 3])"});
  // Nothing was copied.
  for (const auto& kv : core::state_dict(*m))
    EXPECT_TRUE(torch::equal(kv.second, before.at(kv.first))) << kv.first;

  // Missing/unexpected only: still an error when strict, a report when not.
  sd["lin.weight"] = torch::zeros({4, 3});
  testing::expect_error_contains([&] { core::load_state_dict(*m, sd, opt); },
                                 {"strict load failed", "blocks.1.bias", "extra.w"});
  opt.strict = false;
  core::LoadReport r = core::load_state_dict(*m, sd, opt);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.missing, (std::vector<std::string>{"blocks.1.bias", "steps"}));
  EXPECT_EQ(r.unexpected, (std::vector<std::string>{"extra.w"}));
  EXPECT_EQ(r.loaded, 5);
  EXPECT_TRUE(torch::equal(m->lin->weight, torch::zeros({4, 3})));
  // Shape mismatches are errors even when not strict.
  sd["lin.bias"] = torch::zeros({5});
  testing::expect_error_contains([&] { core::load_state_dict(*m, sd, opt); },
                                 {"lin.bias (file [5], model [4])"});
}

TEST(StateDict, SummaryTruncatesLongLists) {
  core::LoadReport r;
  for (int i = 0; i < 30; ++i) r.missing.push_back("k" + std::to_string(i));
  const std::string s = r.summary(3);
  EXPECT_NE(s.find("30 missing keys: k0, k1, k2, ... (27 more)"), std::string::npos) << s;
}

TEST(StateDict, SelectAndStripPrefixes) {
  core::TensorMap sd = random_state(3);
  core::TensorMap wrapped;
  for (const auto& kv : sd) {
    wrapped["generator.model." + kv.first] = kv.second;
    wrapped["critic.model." + kv.first] = kv.second * 0;
  }
  core::LoadOptions opt;
  opt.select = "generator.";
  opt.strip = "model.";
  core::TensorMap mapped = core::map_keys(wrapped, opt);
  EXPECT_EQ(mapped.size(), sd.size());
  EXPECT_TRUE(mapped.count("lin.weight"));
  Tiny m;
  core::load_state_dict(*m, wrapped, opt);
  expect_loaded(m, sd);
  // A select prefix that matches nothing says so.
  opt.select = "gen.";
  testing::expect_error_contains([&] { core::load_state_dict(*m, wrapped, opt); },
                                 {"no key starts with 'gen.'", "critic.model."});
}

TEST(StateDict, ConvertsDtypesLikeCopy) {
  core::TensorMap sd = random_state(4);
  for (auto& kv : sd)
    if (kv.second.is_floating_point()) kv.second = kv.second.to(torch::kBFloat16);
  Tiny m;
  core::load_state_dict(*m, sd);
  EXPECT_EQ(m->lin->weight.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(m->lin->weight, sd.at("lin.weight").to(torch::kFloat32)));
}

TEST(StateDict, CausVidCheckpointEndToEnd) {
  // model.pt = {"generator": {"model.<key>": ..}, "critic": {...}} loads into the generator.
  TempDir dir;
  core::TensorMap sd = random_state(5), gen, critic;
  for (const auto& kv : sd) {
    gen["model." + kv.first] = kv.second;
    critic["model." + kv.first] = torch::zeros_like(kv.second);
  }
  const std::string path = dir.file("model.pt");
  core::save_torch_checkpoint(path, core::nested_dict({{"generator", core::tensor_dict(gen)},
                                                       {"critic", core::tensor_dict(critic)}}));
  Tiny m;
  core::LoadOptions opt;
  opt.select = "generator.";
  opt.strip = "model.";
  opt.source = path;
  core::load_state_dict(*m, core::load_weights(path), opt);
  expect_loaded(m, sd);
}

}  // namespace
}  // namespace causvid
