// tests/checks/train_step_test.cpp: the train_step fixture kind can fail. Copies of a public
// fixture with one replayed draw changed, a wrong lr, or a draw missing or misshapen must not
// pass; and the replay source itself names the draw it cannot hand out. The fixtures passing
// is tests/checks/fixtures_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "checks/fixtures.h"
#include "core/fs.h"
#include "core/random.h"
#include "core/safetensors.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

namespace fs = std::filesystem;

// A writable copy of tests/fixtures/<name>.
struct FixtureCopy {
  testing::TempDir tmp;
  std::string dir;
  explicit FixtureCopy(const std::string& name) : dir(tmp.file(name)) {
    fs::copy(std::string(CAUSVID_SOURCE_DIR) + "/tests/fixtures/" + name, dir);
  }
  void edit_io(const std::function<void(core::TensorMap&)>& fn) {
    auto io = core::load_safetensors(dir + "/io.safetensors");
    for (auto& kv : io) kv.second = kv.second.clone();  // detach from the file
    fn(io);
    core::save_safetensors(dir + "/io.safetensors", io);
  }
  void edit_meta(const std::function<void(nlohmann::json&)>& fn) {
    auto meta = nlohmann::json::parse(core::read_file(dir + "/meta.json"));
    fn(meta);
    core::write_file_atomic(dir + "/meta.json", meta.dump(1));
  }
};

bool compared_ok(const checks::FixtureResult& r, const std::string& out) {
  for (const auto& c : r.checks)
    if (c.name == out) return c.pass;
  ADD_FAILURE() << out << " was not compared";
  return false;
}

const char* kOde = "ode_step_causal_b2";  // the smallest and fastest step

TEST(TrainStepFixture, UntouchedCopyPasses) {
  FixtureCopy f(kOde);
  auto r = checks::run_fixture(f.dir);
  EXPECT_EQ(r.status, checks::FixtureStatus::kPass) << r.message;
}

TEST(TrainStepFixture, AnotherReplayedDrawFails) {
  FixtureCopy f(kOde);
  // The ODE step's one draw is the trajectory index [B, F] in [0, S): shift it by one.
  f.edit_io([](core::TensorMap& io) { io["in.draw.0"] = (io["in.draw.0"] + 1) % 4; });
  auto r = checks::run_fixture(f.dir);
  EXPECT_EQ(r.status, checks::FixtureStatus::kFail) << r.message;
  EXPECT_FALSE(compared_ok(r, "out.metric.generator_loss"));
}

TEST(TrainStepFixture, PerturbedNoiseDrawFails) {
  FixtureCopy f("critic_step_bidir");
  // Draw 0 is the backward simulation's initial noise.
  f.edit_io([](core::TensorMap& io) { io["in.draw.0"].view(-1)[0] += 1e-2; });
  auto r = checks::run_fixture(f.dir);
  EXPECT_EQ(r.status, checks::FixtureStatus::kFail) << r.message;
  EXPECT_FALSE(compared_ok(r, "out.metric.critic_loss"));
}

TEST(TrainStepFixture, WrongLearningRateFailsOnTheWeightsAlone) {
  FixtureCopy f(kOde);
  f.edit_meta(
      [](nlohmann::json& m) { m["config"]["lr"] = m["config"]["lr"].get<double>() * 1.05; });
  auto r = checks::run_fixture(f.dir);
  EXPECT_EQ(r.status, checks::FixtureStatus::kFail) << r.message;
  EXPECT_TRUE(compared_ok(r, "out.metric.generator_loss"));  // the loss is before the update
  EXPECT_NE(r.message.find("out.generator."), std::string::npos) << r.message;
}

TEST(TrainStepFixture, MissingOrMisshapenDrawIsAnErrorNamingIt) {
  {
    FixtureCopy f(kOde);
    f.edit_io([](core::TensorMap& io) { io.erase("in.draw.0"); });
    auto r = checks::run_fixture(f.dir);
    EXPECT_EQ(r.status, checks::FixtureStatus::kError);
    for (const char* s : {"draw 0", "randint(0, 4)", "[2, 3]", "holds only 0 draws"})
      EXPECT_NE(r.message.find(s), std::string::npos) << s << " not in: " << r.message;
  }
  {
    FixtureCopy f(kOde);
    f.edit_io(
        [](core::TensorMap& io) { io["in.draw.0"] = io["in.draw.0"].narrow(1, 0, 2).clone(); });
    auto r = checks::run_fixture(f.dir);
    EXPECT_EQ(r.status, checks::FixtureStatus::kError);
    for (const char* s : {"draw 0", "[2, 3]", "recorded draw has shape [2, 2]"})
      EXPECT_NE(r.message.find(s), std::string::npos) << s << " not in: " << r.message;
  }
  {
    FixtureCopy f(kOde);  // one draw too many: the step leaves it unused
    f.edit_io([](core::TensorMap& io) { io["in.draw.1"] = torch::zeros({2}); });
    auto r = checks::run_fixture(f.dir);
    EXPECT_EQ(r.status, checks::FixtureStatus::kFail);
    EXPECT_NE(r.message.find("made 1 random draws; the reference made 2"), std::string::npos)
        << r.message;
  }
}

TEST(RandomSource, GeneratorSourceDrawsWhatTheFreeFunctionsDraw) {
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(5);
  auto g2 = at::make_generator<at::CPUGeneratorImpl>(5);
  core::GeneratorSource src(g1);
  EXPECT_TRUE(torch::equal(src.randn({2, 3}, torch::kFloat32), core::randn({2, 3}, g2)));
  EXPECT_TRUE(torch::equal(src.randint(0, 7, {4}, torch::kLong), core::randint(0, 7, {4}, g2)));
  EXPECT_TRUE(torch::equal(src.rand({3}, torch::kFloat32), core::rand({3}, g2)));
}

TEST(RandomSource, ReplayHandsOutDrawsInOrderAndNamesMismatches) {
  core::ReplaySource r({torch::ones({2}), torch::tensor({3, 1}, torch::kLong)}, "rec");
  EXPECT_TRUE(torch::equal(r.randn({2}, torch::kFloat64), torch::ones({2}, torch::kFloat64)));
  testing::expect_error_contains([&] { r.randint(0, 3, {2}, torch::kLong); },
                                 {"rec", "draw 1", "outside [0, 3)"});
  core::ReplaySource kinds({torch::ones({2})}, "rec");
  testing::expect_error_contains([&] { kinds.randint(0, 3, {2}, torch::kLong); },
                                 {"draw 0", "randint(0, 3)", "Float"});
  testing::expect_error_contains([&] { kinds.check_all_used(); }, {"made 0 draws", "holds 1"});
}


// The self_forcing_rollout kind can fail too: another context noise, the exit steps of
// another block, or the gradient the reference's in-place KV cache passes to earlier blocks.
TEST(SelfForcingRolloutFixture, UntouchedCopyPassesAndEditsFail) {
  {
    FixtureCopy f("sf_rollout_per_block_ctx");
    auto r = checks::run_fixture(f.dir);
    EXPECT_EQ(r.status, checks::FixtureStatus::kPass) << r.message;
  }
  {
    FixtureCopy f("sf_rollout_per_block_ctx");
    f.edit_meta([](nlohmann::json& m) { m["config"]["context_noise"] = 0; });
    auto r = checks::run_fixture(f.dir);
    EXPECT_EQ(r.status, checks::FixtureStatus::kFail) << r.message;
    EXPECT_FALSE(compared_ok(r, "out.video"));
  }
  {
    FixtureCopy f("sf_rollout_per_block_ctx");
    // same_step_across_blocks true: every block exits at block 0's step (and the draw
    // count no longer matches), and the timestep range becomes defined.
    f.edit_meta([](nlohmann::json& m) { m["config"]["same_step_across_blocks"] = true; });
    auto r = checks::run_fixture(f.dir);
    EXPECT_NE(r.status, checks::FixtureStatus::kPass) << r.message;
    EXPECT_NE(r.message.find("draw 20"), std::string::npos) << r.message;
  }
}

TEST(SelfForcingRolloutFixture, PerturbedGradientFails) {
  // The gradients are compared too, not only the video: 10% off on one weight's gradient
  // (what a KV cache without the reference's autograd history gives, 12-16% of the norm,
  // is larger; tests/models/kv_cache_grad_test.cpp pins that history down).
  FixtureCopy f("sf_rollout_same_exit2");
  f.edit_io([](core::TensorMap& io) {
    for (auto& kv : io)
      if (kv.first.rfind("out.grad.blocks.0.self_attn.k.", 0) == 0) kv.second = kv.second * 0.9;
  });
  auto r = checks::run_fixture(f.dir);
  EXPECT_EQ(r.status, checks::FixtureStatus::kFail) << r.message;
  EXPECT_FALSE(compared_ok(r, "out.grad.blocks.0.self_attn.k.weight"));
}

}  // namespace
}  // namespace causvid
