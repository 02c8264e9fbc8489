// tests/dist/launch_test.cpp: real processes. The test binary re-runs itself as the ranks
// (DistWorker.Main, skipped unless CAUSVID_DIST_WORKER is set) under launch/local.sh and
// torchrun; a rank that dies mid-step makes the others exit with a clear error in time.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "core/dist.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, n) : std::string("causvid_tests");
}

TEST(DistWorker, Main) {
  const char* mode = std::getenv("CAUSVID_DIST_WORKER");
  if (!mode) GTEST_SKIP() << "only run as a rank by the DistLaunch tests";
  core::DistOptions o;
  const char* to = std::getenv("CAUSVID_DIST_TIMEOUT_MS");
  o.timeout = std::chrono::milliseconds(to ? std::atol(to) : 20000);
  try {
    auto ctx = core::DistContext::init_from_env(o);
    const int W = ctx->world_size(), r = ctx->rank();
    if (std::string(mode) == "die" && r == W - 1) {
      std::fprintf(stderr, "rank %d: dying on purpose\n", r);
      std::_Exit(7);
    }
    for (int i = 0; i < 3; ++i) {
      auto t = torch::full({1000}, float(r + 1));
      ctx->world().all_reduce(t);
      ASSERT_EQ(t[0].item<float>(), float(W * (W + 1) / 2));
      auto rs = ctx->world().reduce_scatter(torch::ones({4 * W}));
      ASSERT_EQ(rs[0].item<float>(), float(W));
    }
    std::printf("WORKER_OK rank %d of %d launcher %s\n", r, W, ctx->env().launcher.c_str());
    std::fflush(stdout);
  } catch (const c10::Error& e) {
    std::printf("WORKER_ERROR %s\n", e.what_without_backtrace());
    std::fflush(stdout);
    std::_Exit(9);
  }
}

std::string worker_cmd(const std::string& mode) {
  return "CAUSVID_DIST_WORKER=" + mode + " CAUSVID_DIST_TIMEOUT_MS=8000 ";
}
std::string worker_prog() { return self_exe() + " --gtest_filter=DistWorker.Main"; }

TEST(DistLaunch, LocalScriptThreeRanks) {
  std::string out;
  int rc = testing::run_command(worker_cmd("ok") + testing::source_dir() +
                                    "/launch/local.sh -n 3 -- " + worker_prog(),
                                &out);
  EXPECT_EQ(rc, 0) << out;
  for (int r = 0; r < 3; ++r)
    EXPECT_NE(out.find("WORKER_OK rank " + std::to_string(r) + " of 3 launcher torchrun"),
              std::string::npos)
        << out;
}

TEST(DistLaunch, RankDeathIsAClearErrorWithinTimeout) {
  std::string out;
  auto t0 = std::chrono::steady_clock::now();
  int rc = testing::run_command(worker_cmd("die") + testing::source_dir() +
                                    "/launch/local.sh -n 3 --grace 30 -- " + worker_prog(),
                                &out);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("WORKER_ERROR"), std::string::npos) << out;
  EXPECT_NE(out.find("a peer rank died"), std::string::npos) << out;
  EXPECT_LT(s, 25.0) << out;
}

TEST(DistLaunch, Torchrun) {
  if (testing::run_command("/usr/bin/python3 -c 'import torch.distributed.run'") != 0)
    GTEST_SKIP() << "no torchrun (python3-torch) on this machine";
  testing::TempDir logs;
  std::string out;
  int rc = testing::run_command(worker_cmd("ok") + testing::source_dir() +
                                    "/launch/torchrun.sh --nproc_per_node 2 --log_dir " +
                                    logs.path() + " -- " + worker_prog(),
                                &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("WORKER_OK rank 1 of 2 launcher torchrun"), std::string::npos) << out;
}

TEST(DistLaunch, ScriptsDocumentThemselves) {
  for (const char* s : {"local.sh", "torchrun.sh", "mpirun.sh", "slurm.sbatch"}) {
    std::string out;
    EXPECT_EQ(testing::run_command("bash " + testing::source_dir() + "/launch/" + s + " --help", &out), 0)
        << s << ": " << out;
    EXPECT_NE(out.find("usage"), std::string::npos) << s << ": " << out;
  }
}

}  // namespace
}  // namespace causvid
