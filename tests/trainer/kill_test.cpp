// tests/trainer/kill_test.cpp: `causvid train` as a process, killed. kill -9 at random moments
// (inside steps and checkpoint writes) loses at most the work since the last checkpoint: every
// resume starts from the newest checkpoint that verifies, and the final weights equal an
// uninterrupted run bit for bit. SIGTERM (preemption) finishes the step, checkpoints, exits 0.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/fs.h"
#include "core/tensor_io.h"
#include "tests/test_util.h"
#include "tests/trainer/tiny_world.h"
#include "trainer/checkpoint.h"

namespace causvid {
namespace {
namespace fs = std::filesystem;
using testing::world;

std::string train_cmd(const std::string& out, int max_iters, const std::string& extra = "") {
  const auto& w = world();
  std::string cmd = testing::causvid_binary() + " train --quiet --samples 0 --config " +
                    testing::source_dir() + "/configs/tiny_ode.yaml";
  for (const std::string& s :
       {"prompt_cache=" + w.cache(), std::string("model_text_dim=32"), std::string("dit_path=random"),
        "output_path=" + out, std::string("num_workers=0"), "data_path=" + w.ode(),
        "max_iters=" + std::to_string(max_iters), std::string("save_iters=3"),
        std::string("keep_latest=2")})
    cmd += " --set " + s;
  return cmd + " " + extra;
}

void expect_same_generator(const std::string& a, const std::string& b) {
  auto x = core::load_weights(a + "/model.pt"), y = core::load_weights(b + "/model.pt");
  ASSERT_EQ(x.size(), y.size());
  for (const auto& kv : x) {
    ASSERT_TRUE(y.count(kv.first)) << kv.first;
    EXPECT_TRUE(torch::equal(kv.second, y.at(kv.first))) << kv.first;
  }
}

TEST(KillResume, KillNineAnywhereThenResumeEqualsUninterrupted) {
  const int kSteps = 30;
  const std::string ref = world().out("kill_ref"), run = world().out("kill_run");
  std::string log;
  ASSERT_EQ(testing::run_command(train_cmd(ref, kSteps), &log), 0) << log;
  const std::string ref_ckpt = trainer::latest_checkpoint(ref);
  ASSERT_FALSE(ref_ckpt.empty()) << log;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> delay_ms(300, 2500);
  int killed_mid_run = 0;
  for (int trial = 0; trial < 6; ++trial) {
    const int ms = delay_ms(rng);
    // Start, kill -9 after `ms`, report whether the process was still running.
    const std::string cmd = "bash -c '" + train_cmd(run, kSteps, "--resume auto") +
                            " >/dev/null 2>&1 & p=$!; sleep " + std::to_string(ms / 1000.0) +
                            "; if kill -9 $p 2>/dev/null; then echo KILLED; fi; wait $p; true'";
    std::string out;
    testing::run_command(cmd, &out);
    killed_mid_run += out.find("KILLED") != std::string::npos;
    // Whatever the moment, the newest complete checkpoint verifies (no half-written one).
    const std::string root = run;
    EXPECT_EQ(trainer::latest_verified_checkpoint(root), trainer::latest_checkpoint(root))
        << "trial " << trial;
  }
  ASSERT_EQ(testing::run_command(train_cmd(run, kSteps, "--resume auto"), &log), 0) << log;
  const std::string got = trainer::latest_checkpoint(run);
  EXPECT_EQ(fs::path(got).filename(), fs::path(ref_ckpt).filename());
  expect_same_generator(ref_ckpt, got);
  std::printf("kill -9 trials: 6, killed while running: %d\n", killed_mid_run);
  EXPECT_GE(killed_mid_run, 1) << "no kill landed during a run: the test proved nothing";
}

TEST(KillResume, DamagedCheckpointIsSkippedForThePreviousOne) {
  const std::string run = world().out("damaged");
  std::string log;
  ASSERT_EQ(testing::run_command(train_cmd(run, 6), &log), 0) << log;
  const std::string root = run;
  const std::string newest = trainer::latest_checkpoint(root);
  ASSERT_TRUE(newest.find("checkpoint_model_000006") != std::string::npos) << newest;
  // Flip one byte of the newest checkpoint's generator shard.
  const std::string shard = newest + "/generator.shard-0-of-1.safetensors";
  std::string bytes = core::read_file(shard);
  bytes[bytes.size() / 2] ^= 0x5a;
  core::write_file_atomic(shard, bytes);
  EXPECT_NE(trainer::verify_checkpoint(newest).find("CRC-32C mismatch"), std::string::npos);
  EXPECT_NE(trainer::latest_verified_checkpoint(root).find("checkpoint_model_000003"),
            std::string::npos);
  // resume auto falls back with a warning; an explicit --resume of the damaged one is an error.
  ASSERT_EQ(testing::run_command(train_cmd(run, 6, "--resume auto"), &log), 0) << log;
  EXPECT_NE(log.find("skipping damaged checkpoint"), std::string::npos) << log;
  EXPECT_NE(log.find("resumed from"), std::string::npos) << log;
  EXPECT_NE(log.find("checkpoint_model_000003"), std::string::npos) << log;
  // The re-run rewrote step 6; truncate its shard: an explicit --resume of it is an error.
  core::write_file_atomic(trainer::latest_checkpoint(root) + "/generator.shard-0-of-1.safetensors",
                          std::string(100, 'x'));
  EXPECT_EQ(testing::run_command(train_cmd(run, 8, "--resume " + trainer::latest_checkpoint(root)),
                                 &log),
            1)
      << log;
  EXPECT_NE(log.find("generator.shard-0-of-1.safetensors"), std::string::npos) << log;
}

TEST(KillResume, SigtermCheckpointsAndExitsZero) {
  const std::string run = world().out("sigterm");
  const std::string metrics = run + "/metrics.jsonl";
  // Wait until a few steps are logged, then SIGTERM (what SLURM and torchrun send).
  const std::string cmd =
      "bash -c '" + train_cmd(run, 100000) + " > " + run + ".log 2>&1 & p=$!; " +
      "for i in $(seq 600); do [ -f " + metrics + " ] && [ $(wc -l < " + metrics +
      ") -ge 4 ] && break; sleep 0.05; done; kill -TERM $p; wait $p'";
  std::string out;
  EXPECT_EQ(testing::run_command(cmd, &out), 0) << out << core::read_file(run + ".log");
  const std::string log = core::read_file(run + ".log");
  EXPECT_NE(log.find("stopped by signal 15"), std::string::npos) << log;
  const std::string ckpt = trainer::latest_checkpoint(run);
  ASSERT_FALSE(ckpt.empty()) << log;
  EXPECT_EQ(trainer::verify_checkpoint(ckpt), "");
  const int64_t step = trainer::read_checkpoint_state(ckpt).at("step").get<int64_t>();
  EXPECT_GE(step, 4);
  EXPECT_NE(ckpt.find(trainer::checkpoint_name(step)), std::string::npos);
  // The requeued job continues from there.
  std::string log2;
  ASSERT_EQ(testing::run_command(train_cmd(run, step + 2, "--resume auto"), &log2), 0) << log2;
  EXPECT_NE(log2.find("at step " + std::to_string(step)), std::string::npos) << log2;
}

}  // namespace
}  // namespace causvid
