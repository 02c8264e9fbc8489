// tests/data/lmdb_verify_test.cpp: untrusted LMDB files (data/lmdb_verify.h). A valid tiny
// array LMDB is mutated 200 times with fixed seeds (bit flips, byte overwrites, page-header
// overwrites, truncations anywhere and at page boundaries); verify must never crash or hang
// this process, and either accept (then every row is read through the training dataset, in
// this process) or reject with an error naming data.mdb. Also: the truncated file, a folder
// without data.mdb, the guarded child's crash and timeout paths, and `causvid lmdb verify`.
#include "data/lmdb_verify.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "data/array_lmdb.h"
#include "data/datasets.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

namespace fs = std::filesystem;
using Status = data::VerifyResult::Status;

// 200 rows [F=2, C=2, H=2, W=2] (32 float16 bytes) + prompts: ~400 small entries, a few
// leaf pages under a branch page, so mutations hit LMDB's structure, not only row bytes.
void make_tiny(const std::string& path, int64_t n = 200) {
  data::ArrayLmdbWriter w(path);
  // Fixed values: the file's bytes, so the counts below, are the same on every run.
  auto rows = torch::arange(n * 16, torch::kFloat32).div(64).view({n, 2, 2, 2, 2});
  w.put_tensor_rows("latents", 0, rows);
  std::vector<std::string> prompts;
  for (int64_t i = 0; i < n; ++i) prompts.push_back("prompt number " + std::to_string(i));
  w.put_string_rows("prompts", 0, prompts);
  w.finish({{"latents", {n, 2, 2, 2, 2}}, {"prompts", {n}}});
}

std::string read_file(const std::string& f) {
  std::ifstream in(f, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_lmdb(const std::string& dir, const std::string& bytes) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir + "/data.mdb", std::ios::binary) << bytes;
}

std::string mutate(std::string b, int variant) {
  std::mt19937_64 rng(1000 + variant);
  const size_t page = 4096, pages = b.size() / page;
  switch (variant % 5) {
    case 0:  // 1..4 bit flips anywhere
      for (int j = 0, n = 1 + static_cast<int>(rng() % 4); j < n; ++j)
        b[rng() % b.size()] ^= static_cast<char>(1 << (rng() % 8));
      break;
    case 1: {  // 8 random bytes anywhere
      const size_t at = rng() % (b.size() - 8);
      for (size_t j = 0; j < 8; ++j) b[at + j] = static_cast<char>(rng());
      break;
    }
    case 2: {  // 4 random bytes in a page header or the first node pointers
      const size_t at = (rng() % pages) * page + rng() % 40;
      for (size_t j = 0; j < 4; ++j) b[at + j] = static_cast<char>(rng());
      break;
    }
    case 3:
      b.resize(rng() % b.size());
      break;  // truncated anywhere
    default:
      b.resize((rng() % pages) * page);
      break;  // truncated at a page boundary
  }
  return b;
}

TEST(LmdbVerify, AcceptsValidLmdbAndSummarises) {
  testing::TempDir dir;
  const std::string path = dir.file("lmdb");
  make_tiny(path, 20);
  auto v = data::verify_array_lmdb(path, 30);
  ASSERT_TRUE(v.ok()) << v.error;
  EXPECT_EQ(v.num_entries, 42);
  EXPECT_NE(v.summary.find("latents: shape [20, 2, 2, 2, 2], rows 20, float16 rows of 32 bytes"),
            std::string::npos)
      << v.summary;
  EXPECT_NE(v.summary.find("prompts: shape [20], rows 20, strings"), std::string::npos);
  EXPECT_TRUE(data::check_lmdb_file(path).empty());
}

TEST(LmdbVerify, RejectsLayoutErrorsNamingTheKey) {
  testing::TempDir dir;
  const std::string path = dir.file("lmdb");
  {
    data::LmdbWriter w(path);
    w.put("latents_0_data", std::string(32, '\0'));
    w.put("latents_1_data", std::string(30, '\0'));
    w.put("latents_shape", "2 2 2 2 2");
    w.put("prompts_shape", "3");
    w.put("big_shape", "1 4000000000 4000000000 4000000000");
    w.commit();
  }
  auto v = data::verify_array_lmdb(path, 30);
  ASSERT_EQ(v.status, Status::kRejected);
  EXPECT_NE(v.error.find(path + "/data.mdb"), std::string::npos) << v.error;
  EXPECT_NE(v.error.find("'big_shape'"), std::string::npos) << v.error;  // overflow, first key
  testing::expect_error_contains([&] { data::open_train_dataset(path, {}); },
                                 {path + "/data.mdb", "big_shape", "too large"});
}

TEST(LmdbVerify, TruncatedAtPageBoundaryIsCaughtWithoutForking) {
  testing::TempDir dir;
  const std::string good = dir.file("good"), cut = dir.file("cut");
  make_tiny(good);
  const std::string bytes = read_file(good + "/data.mdb");
  ASSERT_GT(bytes.size(), 34816u);
  for (size_t size : {bytes.size() - 4096, size_t{4 * 4096}, size_t{34816}, size_t{4096},
                      size_t{100}, size_t{0}}) {
    write_lmdb(cut, bytes.substr(0, size));
    const std::string err = data::check_lmdb_file(cut);
    EXPECT_NE(err.find(cut + "/data.mdb: corrupt"), std::string::npos) << size << ": " << err;
    auto v = data::verify_array_lmdb(cut, 30);
    EXPECT_EQ(v.status, Status::kRejected) << size;
    EXPECT_EQ(v.error, err);
    // Every read-only open runs the cheap check (the old behaviour was a SIGBUS).
    testing::expect_error_contains([&] { data::ArrayLmdb db(cut); }, {cut + "/data.mdb"});
    testing::expect_error_contains([&] { data::open_train_dataset(cut, {}); },
                                   {cut + "/data.mdb", "corrupt"});
  }
}

TEST(LmdbVerify, FolderWithoutDataMdb) {
  testing::TempDir dir;
  const std::string empty = dir.file("empty");
  fs::create_directories(empty);
  auto v = data::verify_array_lmdb(empty, 30);
  EXPECT_EQ(v.status, Status::kRejected);
  EXPECT_NE(v.error.find(empty + "/data.mdb: not found"), std::string::npos) << v.error;
  v = data::verify_array_lmdb(dir.file("nothing"), 30);
  EXPECT_NE(v.error.find("LMDB not found"), std::string::npos) << v.error;
}

TEST(LmdbVerify, GuardedChildCrashAndTimeout) {
  auto r = data::run_guarded(
      []() -> std::string {
        ::raise(SIGBUS);
        return "S";
      },
      30);
  EXPECT_EQ(r.outcome, data::GuardedRun::Outcome::kCrashed);
  EXPECT_EQ(r.what, "the reader died with SIGBUS");
  r = data::run_guarded(
      []() -> std::string {
        for (;;) ::pause();
      },
      0.3);
  EXPECT_EQ(r.outcome, data::GuardedRun::Outcome::kTimedOut);
  EXPECT_EQ(r.what, "did not finish in 0.3 s");
  r = data::run_guarded([] { return std::string("Sfine"); }, 30);
  EXPECT_EQ(r.outcome, data::GuardedRun::Outcome::kAnswered);
  EXPECT_EQ(r.answer, "Sfine");
}

// Reads every row the dataset offers; an exception is allowed (it must name the file), a
// signal is not (it would end this test binary).
bool read_all_rows(const std::string& path) {
  try {
    auto ds = data::open_train_dataset(path, {});
    for (int64_t i = 0; i < ds->size(); ++i) {
      ds->prompt(i);
      ds->latents(i);
    }
    return true;
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    return false;
  }
}

TEST(LmdbVerify, MutatedFilesNeverCrashOrHangTheCaller) {
  testing::TempDir dir;
  const std::string good = dir.file("good"), mut = dir.file("mut");
  make_tiny(good);
  const std::string bytes = read_file(good + "/data.mdb");
  int counts[4] = {0, 0, 0, 0}, read_errors = 0;
  for (int variant = 0; variant < 200; ++variant) {
    write_lmdb(mut, mutate(bytes, variant));
    auto v = data::verify_array_lmdb(mut, 5);
    ++counts[static_cast<int>(v.status)];
    if (v.ok()) {
      if (!read_all_rows(mut)) ++read_errors;
    } else {
      EXPECT_NE(v.error.find(mut + "/data.mdb"), std::string::npos) << variant << ": " << v.error;
    }
  }
  std::cout << "[ counts   ] accepted " << counts[0] << " (read errors " << read_errors
            << "), rejected " << counts[1] << ", crashed child caught " << counts[2]
            << ", timed out " << counts[3] << " (of 200)\n";
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_EQ(counts[0] + counts[1] + counts[2] + counts[3], 200);
}

TEST(LmdbVerify, CommandExitStatus) {
  testing::TempDir dir;
  const std::string good = dir.file("good"), cut = dir.file("cut");
  make_tiny(good, 10);
  const std::string bytes = read_file(good + "/data.mdb");
  write_lmdb(cut, bytes.substr(0, bytes.size() - 2048));  // as the 34816-byte cut
  std::string out;
  EXPECT_EQ(testing::run_command(testing::causvid_binary() + " lmdb verify " + good, &out), 0)
      << out;
  EXPECT_NE(out.find("sound (22 entries"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(testing::causvid_binary() + " lmdb verify " + cut, &out), 1)
      << out;
  EXPECT_NE(out.find(cut + "/data.mdb: corrupt"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(testing::causvid_binary() + " lmdb info " + cut, &out), 1) << out;
  EXPECT_NE(out.find(cut + "/data.mdb"), std::string::npos) << out;
}

}  // namespace
}  // namespace causvid
