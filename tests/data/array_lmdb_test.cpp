// tests/data/array_lmdb_test.cpp: CausVid's array-rows LMDB layout, with the bytes built by
// hand exactly as its Python writer (create_lmdb_iterative.py store_arrays_to_lmdb) lays
// them out, read through ArrayLmdb and the training dataset; and our writer round-trips.
#include <gtest/gtest.h>

#include "data/array_lmdb.h"
#include "data/datasets.h"
#include "data/lmdb.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

TEST(ArrayLmdb, ReadsCausVidPythonLayout) {
  testing::TempDir dir;
  const std::string path = dir.file("ode_lmdb");
  // Two ODE rows [S=2, F=3, C=1, H=2, W=2] as numpy float16 .tobytes() (C order).
  auto rows = torch::arange(2 * 2 * 3 * 1 * 2 * 2, torch::kFloat32).div(8).view({2, 2, 3, 1, 2, 2});
  {
    data::LmdbWriter w(path);
    auto h = rows.to(torch::kHalf).contiguous();
    const size_t row_bytes = h.numel() / 2 * 2;
    for (int i = 0; i < 2; ++i) {
      w.put("latents_" + std::to_string(i) + "_data",
            std::string(static_cast<const char*>(h.data_ptr()) + i * row_bytes, row_bytes));
      w.put("prompts_" + std::to_string(i) + "_data", i == 0 ? "a red car" : "\xE7\x8C\xAB");
    }
    w.put("latents_shape", "2 2 3 1 2 2");
    w.put("prompts_shape", "2");
    w.commit();
  }
  data::ArrayLmdb db(path);
  EXPECT_EQ(db.arrays(), (std::vector<std::string>{"latents", "prompts"}));
  EXPECT_EQ(db.shape("latents"), (std::vector<int64_t>{2, 2, 3, 1, 2, 2}));
  EXPECT_TRUE(torch::equal(db.tensor_row("latents", 1), rows[1]));
  EXPECT_EQ(db.string_row("prompts", 1), "\xE7\x8C\xAB");
  auto ds = data::open_train_dataset(path, {3, 1, 2, 2});
  EXPECT_EQ(ds->size(), 2);
  EXPECT_TRUE(torch::equal(ds->latents(0), rows[0]));
  EXPECT_EQ(ds->prompt(0), "a red car");
  testing::expect_error_contains([&] { data::open_train_dataset(path, {3, 1, 4, 4}); },
                                 {"image_or_video_shape", "[3, 1, 2, 2]"});
}

TEST(ArrayLmdb, WriterRoundTripAndBadShapeKey) {
  testing::TempDir dir;
  const std::string path = dir.file("lat");
  auto lat = torch::randn({3, 6, 4, 2, 2});
  {
    data::ArrayLmdbWriter w(path);
    w.put_tensor_rows("latents", 0, lat);
    w.put_string_rows("prompts", 0, {"a", "b", "c"});
    w.finish({{"latents", {3, 6, 4, 2, 2}}, {"prompts", {3}}});
  }
  data::ArrayLmdb db(path);
  // Rank-4 rows: one trajectory point, S = 1.
  auto ds = data::open_train_dataset(path, {6, 4, 2, 2});
  EXPECT_EQ(ds->latents(2).sizes(), torch::IntArrayRef({1, 6, 4, 2, 2}));
  EXPECT_TRUE(torch::allclose(ds->latents(2)[0], lat[2].to(torch::kHalf).to(torch::kFloat32)));
  testing::expect_error_contains([&] { db.shape("missing"); }, {"missing_shape"});
  {
    data::LmdbWriter w(dir.file("bad"));
    w.put("latents_shape", "3 x 4");
    w.commit();
  }
  data::ArrayLmdb bad(dir.file("bad"));
  testing::expect_error_contains([&] { bad.shape("latents"); }, {"latents_shape", "3 x 4"});
}

}  // namespace
}  // namespace causvid
