// tests/checks/fixtures_test.cpp: the parity suite. One test per fixture directory found in
// tests/fixtures, ../shared/fixtures (names not already in tests/fixtures) and every
// directory listed in CAUSVID_FIXTURES (colon-separated).
// Unknown kinds fail; known kinds whose issue has not landed are skipped with the kind named.
#include "checks/fixtures.h"

#include <filesystem>

#include "core/fs.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

std::vector<std::string> all_fixture_dirs() {
  return checks::default_fixture_dirs(testing::shared_dir());
}

class FixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureTest, MatchesReference) {
  auto r = checks::run_fixture(GetParam());
  for (const auto& c : r.checks)
    std::printf("  %-40s max_abs %.3e tol(a=%.1e,r=%.1e) %s\n", c.name.c_str(), c.max_abs,
                c.tol.atol, c.tol.rtol, c.pass ? "OK" : "NOT OK");
  if (r.status == checks::FixtureStatus::kNotImplemented)
    GTEST_SKIP() << "fixture kind '" << r.kind << "' not implemented yet: " << r.message;
  EXPECT_EQ(r.status, checks::FixtureStatus::kPass)
      << r.dir << " [" << r.kind << "] " << checks::status_name(r.status) << ": " << r.message;
}

// The same fixtures with the models in bf16 on the CPU, held to checks::bf16_tolerance (the
// gpu label runs them on CUDA too): the bf16 path of every model, loss and sampler.
class FixtureBf16Test : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureBf16Test, MatchesReferenceInBf16) {
  checks::FixturePlacement place;
  place.dtype = torch::kBFloat16;
  auto r = checks::run_fixture(GetParam(), place);
  if (r.status == checks::FixtureStatus::kNotImplemented)
    GTEST_SKIP() << "fixture kind '" << r.kind << "' not implemented yet: " << r.message;
  EXPECT_EQ(r.status, checks::FixtureStatus::kPass)
      << r.dir << " [" << r.kind << ", bf16] " << checks::status_name(r.status) << ": "
      << r.message;
}

std::string fixture_test_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string n = std::filesystem::path(info.param).filename().string();
  for (auto& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(Golden, FixtureTest, ::testing::ValuesIn(all_fixture_dirs()),
                         fixture_test_name);
INSTANTIATE_TEST_SUITE_P(GoldenBf16, FixtureBf16Test, ::testing::ValuesIn(all_fixture_dirs()),
                         fixture_test_name);

TEST(FixtureRunner, UnknownKindFails) {
  testing::TempDir dir;
  core::write_file_atomic(dir.file("meta.json"),
                          R"({"kind": "no_such_kind", "tolerance": {"atol": 0, "rtol": 0}})");
  core::save_safetensors(dir.file("io.safetensors"), {{"out.y", torch::zeros({1})}});
  auto r = checks::run_fixture(dir.path());
  EXPECT_EQ(r.status, checks::FixtureStatus::kUnknownKind);
  EXPECT_NE(r.message.find("no_such_kind"), std::string::npos);
  std::string out;
  int rc = testing::run_command(testing::causvid_binary() + " check-fixtures " + dir.path(), &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("UNKNOWN KIND"), std::string::npos) << out;
}

TEST(FixtureRunner, ToleranceOverridesUseGlobs) {
  auto meta = nlohmann::json::parse(
      R"({"tolerance": {"atol": 1, "rtol": 2},
          "tolerance_overrides": {"out.grad.*": {"atol": 3, "rtol": 4}, "out.loss": {"atol": 5, "rtol": 6}}})");
  EXPECT_EQ(checks::tolerance_for(meta, "out.grad.blocks.0.q.weight").atol, 3);
  EXPECT_EQ(checks::tolerance_for(meta, "out.loss").rtol, 6);
  EXPECT_EQ(checks::tolerance_for(meta, "out.y").atol, 1);
}

}  // namespace
}  // namespace causvid
