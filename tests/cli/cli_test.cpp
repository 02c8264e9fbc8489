// tests/cli/cli_test.cpp: the `causvid` command line (cli/options.h, CLI11): --help of every
// subcommand works and shows defaults, a bad flag or value exits 2 naming the flag, and
// --set overrides reach the config.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace causvid {
namespace {

std::string bin() { return testing::causvid_binary(); }

TEST(Cli, EverySubcommandHelpExitsZero) {
  const std::vector<std::string> cmds = {
      "smoke", "inspect", "check-fixtures", "config", "embed-prompts", "plan", "train",
      "export", "lmdb", "lmdb info", "lmdb verify", "lmdb build", "preprocess", "encode", "ode-pairs",
      "generate", "eval", "eval vbench", "eval toy", "toy", "toy run", "toy data", "toy eval",
      "toy preview", "toy probe", "bench", "bench dit", "bench video", "bench vae", "bench t5",
      "bench train", "bench fsdp", "bench generate"};
  for (const auto& c : cmds) {
    std::string out;
    EXPECT_EQ(testing::run_command(bin() + " " + c + " --help", &out), 0) << c << "\n" << out;
    EXPECT_NE(out.find("--help"), std::string::npos) << c << "\n" << out;
  }
  std::string out;
  EXPECT_EQ(testing::run_command(bin() + " --help", &out), 0) << out;
  EXPECT_NE(out.find("generate"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(bin() + " help", &out), 0) << out;
  EXPECT_EQ(testing::run_command(bin(), &out), 2) << out;
}

TEST(Cli, HelpShowsDefaults) {
  std::string out;
  ASSERT_EQ(testing::run_command(bin() + " train --help", &out), 0) << out;
  EXPECT_NE(out.find("--samples INT=4"), std::string::npos) << out;
  EXPECT_NE(out.find("--timeout FLOAT=1800"), std::string::npos) << out;
  EXPECT_NE(out.find("sample previews per checkpoint"), std::string::npos) << out;
  ASSERT_EQ(testing::run_command(bin() + " bench dit --help", &out), 0) << out;
  EXPECT_NE(out.find("wan-mid"), std::string::npos) << out;
  ASSERT_EQ(testing::run_command(bin() + " generate --help", &out), 0) << out;
  EXPECT_NE(out.find("outputs/generate"), std::string::npos) << out;
}

TEST(Cli, BadFlagsExitTwoNamingTheFlag) {
  const std::string cfg = testing::source_dir() + "/configs/tiny_dmd.yaml";
  std::string out;
  EXPECT_EQ(testing::run_command(bin() + " train --config " + cfg + " --bogus-flag", &out), 2);
  EXPECT_NE(out.find("--bogus-flag"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(bin() + " train --config " + cfg + " --samples many", &out), 2);
  EXPECT_NE(out.find("--samples"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(bin() + " plan --config " + cfg + " --world-size 2.5", &out), 2);
  EXPECT_NE(out.find("--world-size"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(bin() + " train", &out), 2);  // --config is required
  EXPECT_NE(out.find("--config"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(bin() + " export --format onnx --out x ckpt", &out), 2);
  EXPECT_NE(out.find("--format"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(bin() + " no-such-command", &out), 2);
  EXPECT_NE(out.find("no-such-command"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(bin() + " bench", &out), 2);  // a group needs a subcommand
}

TEST(Cli, SetOverridesReachTheConfig) {
  const std::string cfg = testing::source_dir() + "/configs/tiny_dmd.yaml";
  std::string out;
  ASSERT_EQ(testing::run_command(bin() + " plan --config " + cfg +
                                     " --set sharding_strategy=no_shard --set "
                                     "mixed_precision=false --world-size=4",
                                 &out),
            0)
      << out;
  EXPECT_NE(out.find("strategy no_shard, mixed_precision false, world size 4"),
            std::string::npos)
      << out;
  // Repeated --set each take one value; a later scalar flag wins over an earlier one.
  ASSERT_EQ(testing::run_command(bin() + " config --config " + cfg +
                                     " --set lr=0.25 --set seed=7",
                                 &out),
            0)
      << out;
  EXPECT_NE(out.find("lr: 0.25\n"), std::string::npos) << out;
  EXPECT_NE(out.find("seed: 7\n"), std::string::npos) << out;
  ASSERT_EQ(testing::run_command(bin() + " plan --config " + cfg +
                                     " --world-size 2 --world-size 4",
                                 &out),
            0)
      << out;
  EXPECT_NE(out.find("world size 4"), std::string::npos) << out;
}

}  // namespace
}  // namespace causvid
