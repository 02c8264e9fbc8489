// tests/fuzz/replay_test.cpp: every fuzz harness (fuzz/harness.h) on every seed and every
// saved crash input, in the ordinary (unsanitized) build: a crash found by fuzzing and fixed
// stays fixed here too, on machines without clang.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "core/log.h"
#include "fuzz/harness.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const fs::path kFuzz = fs::path(CAUSVID_SOURCE_DIR) / "fuzz";

// Each harness has a seed corpus and each corpus a harness (the ctest `fuzz` tests are made
// from the corpus folders).
TEST(FuzzReplay, EveryHarnessHasSeedsAndEverySeedFolderAHarness) {
  std::set<std::string> names;
  for (const auto& h : fuzz::harnesses()) {
    names.insert(h.name);
    EXPECT_FALSE(files_in(kFuzz / "corpus" / h.name).empty()) << h.name << ": no seeds";
  }
  for (const auto& sub : {"corpus", "regressions"})
    for (const auto& e : fs::directory_iterator(kFuzz / sub))
      EXPECT_TRUE(names.count(e.path().filename().string()))
          << e.path() << ": no harness of that name";
}

TEST(FuzzReplay, SeedsAndSavedCrashesRunClean) {
  core::set_log_level(core::LogLevel::kError);
  int n = 0;
  for (const auto& h : fuzz::harnesses())
    for (const auto& sub : {"corpus", "regressions"})
      for (const auto& f : files_in(kFuzz / sub / h.name)) {
        SCOPED_TRACE(f);
        const std::string b = bytes_of(f);
        h.run(reinterpret_cast<const uint8_t*>(b.data()), b.size());  // aborts on a finding
        ++n;
      }
  core::set_log_level(core::LogLevel::kInfo);
  EXPECT_GE(n, static_cast<int>(fuzz::harnesses().size()));
}

// The harness rule can fail: an error that does not name the input is a finding.
TEST(FuzzReplayDeathTest, AnErrorNotNamingTheInputIsAFinding) {
  EXPECT_DEATH(fuzz::expect_clean("input.bin", [] { TORCH_CHECK(false, "bad byte 3"); }),
               "error does not name 'input.bin'");
  fuzz::expect_clean("input.bin", [] { TORCH_CHECK(false, "input.bin: bad byte 3"); });
}

}  // namespace
}  // namespace causvid
