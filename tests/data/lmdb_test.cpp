// tests/data/lmdb_test.cpp: the RAII LMDB wrapper: round trip, iteration, map growth on
// MDB_MAP_FULL, read-only open errors, CausVid-style keys.
#include "data/lmdb.h"

#include "core/fs.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

TEST(Lmdb, PutGetIterate) {
  testing::TempDir dir;
  const std::string db = dir.file("db");
  {
    data::LmdbWriter w(db);
    w.put("latents_shape", "2 21 16 60 104");
    w.put("latents_0_data", std::string("\x00\x01\x02", 3));
    w.put("prompts_0_data", "a cat");
    w.commit();
    w.put("prompts_0_data", "a dog");  // overwrite in a second commit
    w.commit();
  }
  data::LmdbReader r(db);
  EXPECT_EQ(r.size(), 3);
  EXPECT_EQ(r.get("latents_0_data").value(), std::string("\x00\x01\x02", 3));
  EXPECT_EQ(r.get("prompts_0_data").value(), "a dog");
  EXPECT_FALSE(r.get("missing").has_value());
  EXPECT_TRUE(r.contains("latents_shape"));
  EXPECT_EQ(r.keys(), (std::vector<std::string>{"latents_0_data", "latents_shape",
                                                "prompts_0_data"}));
}

TEST(Lmdb, GrowsMapWhenFull) {
  testing::TempDir dir;
  const std::string db = dir.file("db");
  std::string big(100 * 1024, 'x');
  {
    data::LmdbWriter w(db, 64 * 1024);  // far too small for 3 MiB
    for (int i = 0; i < 30; ++i) w.put("k" + std::to_string(i), big + std::to_string(i));
    w.commit();
    EXPECT_GT(w.num_resizes(), 0);
    EXPECT_GE(w.map_size(), 3u << 20);
  }
  data::LmdbReader r(db);
  EXPECT_EQ(r.size(), 30);
  EXPECT_EQ(r.get("k29").value(), big + "29");
}

TEST(Lmdb, UncommittedDataIsDropped) {
  testing::TempDir dir;
  {
    data::LmdbWriter w(dir.file("db"));
    w.put("a", "1");
    w.commit();
    w.put("b", "2");
  }
  data::LmdbReader r(dir.file("db"));
  EXPECT_TRUE(r.contains("a"));
  EXPECT_FALSE(r.contains("b"));
}

TEST(Lmdb, ClearErrors) {
  testing::TempDir dir;
  testing::expect_error_contains([&] { data::LmdbReader r(dir.file("none")); },
                                 {dir.file("none"), "not found"});
  core::make_dirs(dir.file("empty"));
  testing::expect_error_contains([&] { data::LmdbReader r(dir.file("empty")); },
                                 {dir.file("empty"), "open read-only"});
  core::write_file_atomic(dir.file("file"), "x");
  testing::expect_error_contains([&] { data::LmdbReader r(dir.file("file")); },
                                 {dir.file("file"), "not a directory"});
  data::LmdbWriter w(dir.file("db"));
  testing::expect_error_contains([&] { w.put(std::string(600, 'k'), "v"); },
                                 {dir.file("db"), "key of 600 bytes"});
  testing::expect_error_contains([] { data::check_lmdb(MDB_CORRUPTED, "/x/db", "get"); },
                                 {"/x/db", "get", "corrupted"});
}

}  // namespace
}  // namespace causvid
