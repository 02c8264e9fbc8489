// tests/inference/vbench_test.cpp: inference/vbench.h and `causvid eval vbench` on a tiny
// random model (latent previews, no VAE).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/failures.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "core/state_dict.h"
#include "data/video_io.h"
#include "inference/vbench.h"
#include "models/wan/wan_model.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using testing::expect_error_contains;
using testing::TempDir;

TEST(VBench, NamesAreThePromptDashIndex) {
  EXPECT_EQ(inference::vbench_video_name("A 3D model of a 1800s victorian house.", 3),
            "A 3D model of a 1800s victorian house.-3.mp4");
  expect_error_contains([] { inference::vbench_video_name("a/b", 0); }, {"'/'", "--naming index"});
  expect_error_contains([] { inference::vbench_video_name(std::string(300, 'a'), 0); },
                        {"255", "--names-from"});
  auto items = inference::vbench_items({"long a", "long b"}, {"a", "b"}, 2, 10);
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[3].file, "b-1.mp4");
  EXPECT_EQ(items[3].prompt, "long b");
  EXPECT_EQ(items[3].seed, 13);
  expect_error_contains([] { inference::vbench_items({"a", "b"}, {"a"}, 1, 0); },
                        {"--names-from"});
}

TEST(VBench, RankSplitIsDisjointAndCovering) {
  std::vector<std::string> p(7, "p");
  for (size_t i = 0; i < p.size(); ++i) p[i] += std::to_string(i);
  auto items = inference::vbench_items(p, {}, 3, 0);
  std::set<std::string> seen;
  size_t n = 0;
  for (int r = 0; r < 4; ++r)
    for (const auto& it : inference::split_for_rank(items, r, 4)) {
      EXPECT_TRUE(seen.insert(it.file).second) << it.file;
      ++n;
    }
  EXPECT_EQ(n, items.size());
}

TEST(VBench, TemporalFlickeringAsVBenchDefinesIt) {
  auto still = torch::full({4, 3, 8, 8}, 100, torch::kUInt8);
  EXPECT_DOUBLE_EQ(inference::temporal_flickering(still), 1.0);
  // Frames alternating 0 / 51: every pair differs by 51 everywhere -> (255-51)/255 = 0.8.
  auto alt = torch::zeros({5, 3, 4, 4}, torch::kUInt8);
  alt.slice(0, 1, 2).fill_(51);
  alt.slice(0, 3, 4).fill_(51);
  EXPECT_NEAR(inference::temporal_flickering(alt), 0.8, 1e-12);
  // Mean over pairs of per-pair means: pair diffs 10 and 30 -> mean 20.
  auto f = torch::zeros({3, 3, 2, 2}, torch::kUInt8);
  f[1].fill_(10);
  f[2].fill_(40);
  EXPECT_NEAR(inference::temporal_flickering(f), (255.0 - 20.0) / 255.0, 1e-12);
  expect_error_contains([] { inference::temporal_flickering(torch::zeros({1, 3, 2, 2}, torch::kUInt8)); },
                        {"F>=2"});
}

TEST(VBench, CliGeneratesResumesAndSummarizes) {
  TempDir d;
  models::WanModel m(models::WanConfig::preset("tiny"));
  m->init_weights(0);
  core::save_safetensors(d.file("ckpt.safetensors"), core::state_dict(*m));
  core::write_file_atomic(d.file("p.txt"), "a cat.\nA dog, running\nnot used\n");
  const std::string cmd = "CAUSVID_NUM_THREADS=1 " + testing::causvid_binary() + " eval vbench --config " +
                          testing::source_dir() +
                          "/configs/tiny_dmd.yaml --set num_frame_per_block=3 --set "
                          "image_or_video_shape=[1,6,4,8,8] --set vae_path=none --text-encoder "
                          "hash --preview-scale 2 --checkpoint " +
                          d.file("ckpt.safetensors") + " --prompts " + d.file("p.txt") +
                          " --limit 2 --samples 2 --out " + d.file("vb");
  std::string out;
  ASSERT_EQ(testing::run_command(cmd, &out), 0) << out;
  for (const char* f : {"a cat.-0.mp4", "a cat.-1.mp4", "A dog, running-0.mp4", "A dog, running-1.mp4"})
    EXPECT_TRUE(std::filesystem::exists(d.file(std::string("vb/") + f))) << f << "\n" << out;
  EXPECT_FALSE(std::filesystem::exists(d.file("vb/not used-0.mp4")));
  auto j = nlohmann::json::parse(core::read_file(d.file("vb/causvid_vbench_summary.json")));
  EXPECT_EQ(j["temporal_flickering"]["num_videos"].get<int>(), 4);
  const double s = j["temporal_flickering"]["score"].get<double>();
  EXPECT_GT(s, 0.0);
  EXPECT_LE(s, 1.0);
  const double direct = inference::temporal_flickering_file(d.file("vb/a cat.-0.mp4"));
  EXPECT_DOUBLE_EQ(j["temporal_flickering"]["videos"][0]["score"].get<double>(), direct);
  // Resume: a second run skips the complete files.
  auto t0 = std::filesystem::last_write_time(d.file("vb/a cat.-0.mp4"));
  ASSERT_EQ(testing::run_command(cmd, &out), 0) << out;
  EXPECT_NE(out.find("4 skipped"), std::string::npos) << out;
  EXPECT_EQ(std::filesystem::last_write_time(d.file("vb/a cat.-0.mp4")), t0);
  EXPECT_FALSE(std::filesystem::exists(d.file("vb/failures.txt")));
  // An unreadable video: metrics-only exits 1 and lists it (and the missing ones); a full run
  // regenerates it, exits 0 and removes the list.
  core::write_file_atomic(d.file("vb/A dog, running-1.mp4"), "garbage");
  ASSERT_EQ(testing::run_command(cmd + " --metrics-only", &out), 1) << out;
  auto failures = core::read_failures(d.file("vb/failures.txt"));
  ASSERT_EQ(failures.size(), 1u) << out;
  EXPECT_EQ(failures[0].item, "A dog, running-1.mp4");
  ASSERT_EQ(testing::run_command(cmd, &out), 0) << out;
  EXPECT_FALSE(std::filesystem::exists(d.file("vb/failures.txt"))) << out;
  // No temporary leftovers under the output directory.
  for (const auto& e : std::filesystem::directory_iterator(d.file("vb")))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
}

}  // namespace
}  // namespace causvid
