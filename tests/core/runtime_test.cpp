// tests/core/runtime_test.cpp: device and dtype selection (core/runtime.h), the random-draw
// rule (core/random.h), and the bad-input errors of --device on the CLI; the configure-time
// refusal of another torch version.
#include "core/runtime.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/fs.h"
#include "core/random.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Runtime, CpuAndAutoWithoutGpu) {
  EXPECT_EQ(core::resolve_device("cpu"), torch::Device(torch::kCPU));
  if (core::cuda_device_count() == 0) {
    EXPECT_EQ(core::resolve_device("auto"), torch::Device(torch::kCPU));
  } else {
    EXPECT_TRUE(core::resolve_device("auto").is_cuda());
  }
}

TEST(Runtime, BadDeviceStringsAreClearErrors) {
  for (const char* s : {"tpu", "cuda:", "cuda:x", "gpu", "CUDA", "cuda:1:2"}) {
    const std::string e = error_of([&] { core::resolve_device(s); });
    EXPECT_NE(e.find("device"), std::string::npos) << s << ": " << e;
  }
}

TEST(Runtime, CudaWithoutGpuIsAnErrorNotAFallBack) {
  if (core::cuda_device_count() > 0) GTEST_SKIP() << "a GPU is visible";
  for (const char* s : {"cuda", "cuda:0"}) {
    const std::string e = error_of([&] { core::resolve_device(s); });
    EXPECT_NE(e.find("no CUDA device is visible"), std::string::npos) << s << ": " << e;
  }
}

TEST(Runtime, MoreLocalRanksThanGpus) {
  // 4 ranks on a node with 2 GPUs: local rank 3 has no GPU of its own.
  const std::string e = error_of([] { core::choose_device("cuda", 3, 4, 2); });
  EXPECT_NE(e.find("local rank 3"), std::string::npos) << e;
  EXPECT_NE(e.find("only 2 CUDA device(s) are visible for 4 ranks"), std::string::npos) << e;
  EXPECT_NE(error_of([] { core::choose_device("cuda:2", 0, 1, 2); }).find("only 2"),
            std::string::npos);
  EXPECT_EQ(core::choose_device("cuda", 1, 2, 2), torch::Device(torch::kCUDA, 1));
  EXPECT_EQ(core::choose_device("auto", 0, 1, 0), torch::Device(torch::kCPU));
  EXPECT_EQ(core::choose_device("auto", 1, 2, 2), torch::Device(torch::kCUDA, 1));
}

TEST(Runtime, Dtypes) {
  EXPECT_EQ(core::parse_dtype("bf16"), torch::kBFloat16);
  EXPECT_EQ(core::parse_dtype("fp32"), torch::kFloat32);
  EXPECT_NE(error_of([] { core::parse_dtype("int8", "--dtype"); }).find("--dtype"),
            std::string::npos);
}

TEST(Random, CpuGeneratorGivesTheSameNumbersOnEveryDevice) {
  auto g1 = at::detail::createCPUGenerator(7), g2 = at::detail::createCPUGenerator(7);
  auto a = core::randn({4, 5}, g1);
  auto b = at::randn({4, 5}, g2, torch::TensorOptions());
  EXPECT_TRUE(torch::equal(a, b));
  if (core::cuda_device_count() > 0) {
    auto g3 = at::detail::createCPUGenerator(7);
    auto c = core::randn({4, 5}, g3, torch::TensorOptions().device(torch::kCUDA));
    EXPECT_TRUE(c.is_cuda());
    EXPECT_TRUE(torch::equal(a, c.cpu()));
  }
  auto g4 = at::detail::createCPUGenerator(3);
  auto i = core::randint(0, 10, {100}, g4);
  EXPECT_EQ(i.scalar_type(), torch::kLong);
  EXPECT_GE(i.min().item<int64_t>(), 0);
  EXPECT_LT(i.max().item<int64_t>(), 10);
}

TEST(RuntimeCli, DeviceFlagErrors) {
  const std::string bin = testing::causvid_binary();
  const std::string cfg = testing::source_dir() + "/configs/tiny_dmd.yaml";
  std::string out;
  EXPECT_NE(testing::run_command(bin + " train --config " + cfg + " --device tpu 2>&1", &out), 0);
  EXPECT_NE(out.find("device"), std::string::npos) << out;
  EXPECT_NE(out.find("tpu"), std::string::npos) << out;
  if (core::cuda_device_count() == 0) {
    testing::TempDir dir;
    EXPECT_NE(testing::run_command(bin + " generate --config " + cfg +
                                       " --random-init 1 --text-encoder hash --no-vae --quiet "
                                       "--device cuda --prompt x --out " + dir.path() + " 2>&1",
                                   &out),
              0);
    EXPECT_NE(out.find("no CUDA device is visible"), std::string::npos) << out;
    EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "output written before the error";
  }
}

// Configuring against a torch of another version is refused, naming both versions.
TEST(RuntimeBuild, ConfigureRefusesAnotherTorchVersion) {
  testing::TempDir dir;
  const std::string cm =
      dir.path() + "/venv/lib/python3.11/site-packages/torch/share/cmake/Torch";
  std::filesystem::create_directories(cm);
  core::write_file_atomic(cm + "/TorchConfig.cmake",
                          "set(TORCH_FOUND TRUE)\nset(TORCH_LIBRARIES c10)\n"
                          "set(TORCH_INSTALL_PREFIX \"" + dir.path() + "\")\n");
  core::write_file_atomic(cm + "/TorchConfigVersion.cmake",
                          "set(PACKAGE_VERSION 2.5.0)\nset(PACKAGE_VERSION_COMPATIBLE TRUE)\n");
  std::string out;
  const int rc = testing::run_command(
      "cmake -S " + testing::source_dir() + " -B " + dir.path() + "/build -G Ninja " +
          "-DCAUSVID_TORCH_VENV=" + dir.path() + "/venv 2>&1",
      &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("LibTorch 2.5.0"), std::string::npos) << out;
  EXPECT_NE(out.find("pins"), std::string::npos) << out;
}

}  // namespace
}  // namespace causvid

namespace causvid {
namespace {

// A directory where a file is expected is named as such (config, prompt file).
TEST(RuntimeCli, DirectoryWhereAFileIsExpected) {
  testing::TempDir dir;
  const std::string bin = testing::causvid_binary();
  std::string out;
  EXPECT_EQ(testing::run_command(bin + " train --config " + dir.path(), &out), 1) << out;
  EXPECT_NE(out.find("is a directory, want a file"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(bin + " embed-prompts --preset tiny --prompts " + dir.path() +
                                     " --out " + dir.file("cache"),
                                 &out),
            1)
      << out;
  EXPECT_NE(out.find("is a directory, want a file"), std::string::npos) << out;
}

// A file-size limit (SIGXFSZ ignored by init_process): a clean error and nothing left under
// the final names, as for a full disk.
TEST(RuntimeCli, FileSizeLimitIsAnErrorNotADeath) {
  testing::TempDir dir;
  const std::string bin = testing::causvid_binary();
  std::string out;
  const int rc = testing::run_command("bash -c 'ulimit -f 64; " + bin + " toy data --out " +
                                          dir.file("toy") + " --num 256' 2>&1",
                                      &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_LT(rc, 128) << "killed by a signal (bash reports 128 + signal): " << out;
  EXPECT_FALSE(std::filesystem::exists(dir.file("toy"))) << out;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    ADD_FAILURE() << "left behind: " << e.path() << "\n" << out;
}

}  // namespace
}  // namespace causvid
