// tests/toy/metric_test.cpp: the toy metric (toy/metric.h) separates real videos from
// corrupted ones (static, wrong colour, wrong direction, blurred, noisy, pure noise, mode
// collapse), the Frechet distance, bad inputs, and the `causvid toy` commands.
#include "toy/metric.h"

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/fs.h"
#include "models/wan/wan_model.h"
#include "models/wan/presets.h"
#include "core/safetensors.h"
#include "data/array_lmdb.h"
#include "data/prompt_cache.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

std::vector<std::string> eval_prompts() {
  std::vector<std::string> p;
  for (const auto& a : toy::all_attributes()) p.push_back(toy::make_prompt(a));
  return p;
}

TEST(ToyMetric, RealScoresHighAndCorruptionsClearlyWorse) {
  toy::WorldSpec spec;
  auto prompts = eval_prompts();
  auto real = toy::generate_for_prompts(prompts, 11, spec);
  auto r = toy::evaluate(real, prompts, spec);
  EXPECT_GE(r.video_score, 0.999);
  EXPECT_GE(r.axis, 0.999);
  EXPECT_GT(r.overall, 95.0);
  EXPECT_LT(r.fd, 3.0);
  // The same holds for the 4x rollout length.
  auto long_real = toy::generate_for_prompts(prompts, 12, spec, 24);
  EXPECT_GE(toy::evaluate(long_real, prompts, spec).video_score, 0.999);

  for (const auto& kind : toy::corruption_kinds()) {
    auto s = toy::evaluate(toy::corrupt(real, kind, 3), prompts, spec);
    EXPECT_LT(s.overall, r.overall - 8.0) << kind;
    if (kind == "static" || kind == "direction") {
      EXPECT_LT(s.direction, 0.05) << kind;
      EXPECT_LT(s.motion, 0.05) << kind;
      EXPECT_GT(s.colour, 0.99) << kind;
      // Reversed time keeps the axis (the diagnostic tells a sign error from a wrong axis);
      // a static shape has none.
      if (kind == "direction") {
        EXPECT_GE(s.axis, 0.999);
      } else {
        EXPECT_LT(s.axis, 0.05);
      }
    }
    if (kind == "colour") {
      EXPECT_LT(s.colour, 0.05);
      EXPECT_GT(s.motion, 0.99);
    }
    if (kind == "blur") EXPECT_LT(s.sharpness, 0.9);
    if (kind == "noise") EXPECT_LT(s.overall, 30.0);
  }
  // Mode collapse: every video of a prompt at the same start position. Per-video scores stay
  // perfect; the Frechet distance on the start-position features catches it.
  std::vector<torch::Tensor> same;
  for (const auto& p : prompts) same.push_back(toy::render(toy::parse_prompt(p), 4, 4, spec));
  auto c = toy::evaluate(torch::stack(same), prompts, spec);
  EXPECT_GE(c.video_score, 0.999);
  EXPECT_GT(c.fd, 5 * std::max(r.fd, 0.5));
  EXPECT_LT(c.overall, r.overall - 5.0);
}

TEST(ToyMetric, FrechetDistance) {
  auto gen = at::detail::createCPUGenerator(0);
  auto a = at::randn({4000, 3}, gen, torch::TensorOptions().dtype(torch::kFloat64));
  EXPECT_NEAR(toy::frechet_distance(a, a), 0.0, 1e-6);
  auto shifted = a + torch::tensor({1.0, 2.0, 0.0}, torch::kFloat64);
  EXPECT_NEAR(toy::frechet_distance(shifted, a), 5.0, 1e-6);
  // Scaling one dimension by 2: trace term (2 - 1)^2 = 1.
  auto scaled = a.clone();
  scaled.select(1, 0).mul_(2);
  EXPECT_NEAR(toy::frechet_distance(scaled, a), 1.0, 0.05);
  testing::expect_error_contains([&] { toy::frechet_distance(a, a.narrow(1, 0, 2)); },
                                 {"want [N, D] and [M, D]"});
}

TEST(ToyMetric, BadInputs) {
  toy::WorldSpec spec;
  auto prompts = eval_prompts();
  prompts.resize(2);
  auto real = toy::generate_for_prompts(prompts, 1, spec);
  testing::expect_error_contains(
      [&] { toy::score_videos(real.narrow(2, 0, 3), prompts, 2); }, {"want [N, F, 4, H, W]"});
  testing::expect_error_contains(
      [&] { toy::score_videos(real, {prompts[0]}, 2); }, {"2 videos but 1 prompts"});
  auto nan = real.clone();
  nan[0][0][0][0][0] = std::nanf("");
  testing::expect_error_contains([&] { toy::score_videos(nan, prompts, 2); }, {"NaN or Inf"});
  testing::expect_error_contains([&] { toy::corrupt(real, "sideways"); },
                                 {"--corrupt", "sideways", "static"});
}

TEST(ToyCli, DataEvalAndPreview) {
  testing::TempDir dir;
  const std::string bin = testing::causvid_binary();
  const std::string out = dir.file("toy");
  std::string log;
  ASSERT_EQ(testing::run_command(bin + " toy data --out " + out + " --num 100 --seed 1", &log), 0)
      << log;
  for (const char* f : {"/train_prompts.txt", "/eval_prompts.txt", "/world.json", "/preview.png"})
    EXPECT_TRUE(core::file_exists(out + f)) << f;
  data::ArrayLmdb db(out + "/latents_lmdb");
  EXPECT_EQ(db.shape("latents"), (std::vector<int64_t>{100, 6, 4, 12, 12}));
  EXPECT_EQ(db.shape("prompts"), (std::vector<int64_t>{100}));
  auto train = data::read_prompt_file(out + "/train_prompts.txt");
  ASSERT_EQ(train.size(), 100u);
  EXPECT_EQ(db.string_row("prompts", 7), train[7]);
  auto d = toy::generate(100, 1, toy::WorldSpec{});
  EXPECT_TRUE(torch::allclose(db.tensor_row("latents", 7), d.latents[7], 0, 1e-3));
  EXPECT_EQ(data::read_prompt_file(out + "/eval_prompts.txt").size(), 96u);

  // Existing output, bad flags: clear errors, non-zero exit.
  EXPECT_NE(testing::run_command(bin + " toy data --out " + out + " --num 4", &log), 0);
  EXPECT_NE(log.find("already exists"), std::string::npos) << log;
  EXPECT_NE(testing::run_command(bin + " toy data --out " + dir.file("x") + " --frames 4", &log), 0);
  EXPECT_NE(log.find("multiple of 3"), std::string::npos) << log;

  // eval on a latent file: real latents score high, time-reversed ones lower.
  core::save_safetensors(dir.file("l.safetensors"), {{"latents", d.latents.to(torch::kHalf)}});
  ASSERT_EQ(testing::run_command(bin + " toy eval --latents " + dir.file("l.safetensors") +
                                     " --prompts " + out + "/train_prompts.txt --json " +
                                     dir.file("s.json") + " --preview " + dir.file("s.png"),
                                 &log),
            0)
      << log;
  auto j = nlohmann::json::parse(core::read_file(dir.file("s.json")));
  EXPECT_GT(j["overall"].get<double>(), 95.0) << log;
  EXPECT_TRUE(core::file_exists(dir.file("s.png")));
  ASSERT_EQ(testing::run_command(bin + " toy eval --latents " + dir.file("l.safetensors") +
                                     " --prompts " + out + "/train_prompts.txt --corrupt direction"
                                     " --json " + dir.file("c.json"), &log), 0) << log;
  auto jc = nlohmann::json::parse(core::read_file(dir.file("c.json")));
  EXPECT_LT(jc["overall"].get<double>(), j["overall"].get<double>() - 8.0);
  // More prompts than videos, and a foreign prompt: errors naming the problem.
  EXPECT_NE(testing::run_command(bin + " toy eval --latents " + dir.file("l.safetensors") +
                                     " --prompts " + out + "/eval_prompts.txt", &log), 0);
  EXPECT_NE(log.find("100 videos for 96 prompts"), std::string::npos) << log;
  core::write_file_atomic(dir.file("bad.txt"), "a purple cat\n");
  EXPECT_NE(testing::run_command(bin + " toy eval --real --prompts " + dir.file("bad.txt"), &log), 0);
  EXPECT_NE(log.find("want 'a <size>"), std::string::npos) << log;
  ASSERT_EQ(testing::run_command(bin + " toy preview --lmdb " + out + "/latents_lmdb --out " +
                                     dir.file("v.mp4"), &log), 0) << log;
  EXPECT_TRUE(core::file_exists(dir.file("v.mp4")));
}

TEST(ToyCli, EvalSamplesFromACheckpoint) {
  testing::TempDir dir;
  const std::string bin = testing::causvid_binary();
  const std::string cfg_path = testing::source_dir() + "/configs/toy/teacher.yaml";
  const std::vector<std::string> sets = {"model_dim=32", "model_ffn_dim=64", "model_num_layers=1",
                                         "model_num_heads=2", "num_frame_per_block=3"};
  auto cfg = core::load_config(cfg_path, sets);
  models::WanModel net(models::wan_config(cfg));
  net->init_weights(3);
  {
    torch::NoGradGuard ng;
    net->head->head->weight.normal_(0, 0.02);
  }
  core::TensorMap sd;
  for (const auto& kv : net->named_parameters()) sd[kv.key()] = kv.value().detach().clone();
  core::save_safetensors(dir.file("w.safetensors"), sd);
  core::write_file_atomic(dir.file("p.txt"),
                          "a large red square moving left\na small blue cross moving up\n"
                          "a large green diamond moving down\n");
  std::string set_flags;
  for (const auto& s : sets) set_flags += " --set " + s;
  const std::string base = bin + " toy eval --config " + cfg_path + set_flags +
                           " --checkpoint " + dir.file("w.safetensors") + " --prompts " +
                           dir.file("p.txt");
  std::string log;
  for (const std::string extra : {" --sampler teacher --steps 3 --guidance 2",
                                  " --sampler bidirectional", " --sampler causal --frames 12"}) {
    ASSERT_EQ(testing::run_command(base + extra + " --json " + dir.file("j.json"), &log), 0)
        << extra << "\n" << log;
    auto j = nlohmann::json::parse(core::read_file(dir.file("j.json")));
    EXPECT_EQ(j["num"].get<int64_t>(), 3);
    EXPECT_EQ(j["frames"].get<int64_t>(), extra.find("12") != std::string::npos ? 12 : 6);
    EXPECT_LT(j["overall"].get<double>(), 60.0) << extra;  // random weights: not the world
  }
  EXPECT_EQ(testing::run_command(base + " --sampler sideways", &log), 2);  // a usage error
  EXPECT_NE(log.find("--sampler: sideways not in"), std::string::npos) << log;
  EXPECT_NE(testing::run_command(base + " --sampler causal --frames 7", &log), 0);
  EXPECT_NE(log.find("multiple of num_frame_per_block"), std::string::npos) << log;
  // A checkpoint for another model size: the loader's error names the file.
  EXPECT_NE(testing::run_command(bin + " toy eval --config " + cfg_path + " --checkpoint " +
                                     dir.file("w.safetensors") + " --prompts " +
                                     dir.file("p.txt") + " --sampler teacher --steps 2", &log),
            0);
  EXPECT_NE(log.find("w.safetensors"), std::string::npos) << log;
}

}  // namespace
}  // namespace causvid
