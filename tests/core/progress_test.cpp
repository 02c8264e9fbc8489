// tests/core/progress_test.cpp: core::Progress counts, the line it logs (count, percentage,
// rate, ETA) and format_duration.
#include "core/progress.h"

#include <gtest/gtest.h>

namespace causvid {
namespace {

TEST(Progress, FormatDuration) {
  EXPECT_EQ(core::format_duration(0), "0s");
  EXPECT_EQ(core::format_duration(12.4), "12s");
  EXPECT_EQ(core::format_duration(185), "3m05s");
  EXPECT_EQ(core::format_duration(3720), "1h02m");
  EXPECT_EQ(core::format_duration(-1), "?");
}

TEST(Progress, LineHasCountPercentRateAndEta) {
  core::Progress p("encode", 8, /*interval_s=*/1e9, /*quiet=*/true);
  p.add(2);
  p.add(2, "file.mp4");
  EXPECT_EQ(p.done(), 4);
  EXPECT_EQ(p.total(), 8);
  const std::string line = p.line("file.mp4");
  EXPECT_EQ(line.rfind("encode 4/8 (50.0%)", 0), 0u) << line;
  EXPECT_TRUE(line.find("it/s") != std::string::npos || line.find("s/it") != std::string::npos)
      << line;
  EXPECT_NE(line.find("eta "), std::string::npos) << line;
  EXPECT_NE(line.find("file.mp4"), std::string::npos) << line;
  p.add(4);
  EXPECT_NE(p.line().find("elapsed "), std::string::npos) << p.line();  // done: no ETA
  // Unknown total: a count without percentage.
  core::Progress q("scan", 0, 1e9, true);
  q.add(3);
  EXPECT_EQ(q.line().rfind("scan 3 ", 0), 0u) << q.line();
  EXPECT_EQ(q.line().find('%'), std::string::npos) << q.line();
}

}  // namespace
}  // namespace causvid
