// tests/core/failures_test.cpp: core/failures.h, the failure list of the batch tools: the
// file format, atomic write / removal on a clean run, and the gather over ranks.
#include "core/failures.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>

#include "core/fs.h"
#include "tests/core/dist_util.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

TEST(Failures, FormatParseWriteRemove) {
  testing::TempDir d;
  const std::vector<core::ItemFailure> f = {{"a.mp4", "bad\tfile\nline 2"}, {"b c.mp4", ""}};
  const std::string text = core::format_failures(f);
  EXPECT_EQ(text, "a.mp4\tbad file line 2\nb c.mp4\t\n");
  auto back = core::parse_failures(text);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].item, "a.mp4");
  EXPECT_EQ(back[0].reason, "bad file line 2");
  EXPECT_EQ(back[1].item, "b c.mp4");
  const std::string path = d.file("failures.txt");
  EXPECT_TRUE(core::read_failures(path).empty());  // none yet
  core::write_failures(path, f);
  EXPECT_EQ(core::read_file(path), text);
  EXPECT_EQ(core::read_failures(path).size(), 2u);
  core::write_failures(path, {});  // a clean run removes the stale list
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Failures, ReportGathersEveryRankAndRankZeroWrites) {
  testing::TempDir d;
  std::mutex mu;
  std::vector<size_t> seen;
  testing::run_ranks(3, [&](std::shared_ptr<core::DistContext> ctx) {
    std::vector<core::ItemFailure> mine;
    if (ctx->rank() != 1)  // rank 1 had none
      mine.push_back(
          {"item" + std::to_string(2 - ctx->rank()), "rank " + std::to_string(ctx->rank())});
    auto all = core::report_failures(ctx->world(), d.path(), mine, "test");
    std::lock_guard<std::mutex> g(mu);
    seen.push_back(all.size());
  });
  EXPECT_EQ(seen, (std::vector<size_t>{2, 2, 2}));
  EXPECT_EQ(core::read_file(d.file("failures.txt")), "item0\trank 2\nitem2\trank 0\n");
  testing::run_ranks(2, [&](std::shared_ptr<core::DistContext> ctx) {
    EXPECT_TRUE(core::report_failures(ctx->world(), d.path(), {}, "test").empty());
  });
  EXPECT_FALSE(std::filesystem::exists(d.file("failures.txt")));
}

}  // namespace
}  // namespace causvid
