// tests/core/tensor_io_corrupt_test.cpp: tensor_io on bad input (hand-made, deep, cyclic,
// truncated, garbage and randomly mutated archives: clear errors naming the file, never a
// crash) and the `causvid inspect` subcommand.
#include "core/tensor_io.h"

#include <caffe2/serialize/inline_container.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/fs.h"
#include "core/safetensors.h"
#include "tests/core/tensor_io_test_util.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using namespace tio_test;  // NOLINT: the shared helpers
using testing::TempDir;
using json = nlohmann::json;

// ---------------------------------------------------------------- bad input

// Minimal protocol-2 pickle builder for hand-made corrupt checkpoints.
struct Pkl {
  std::string s = "\x80\x02";
  Pkl& op(const std::string& o) {
    s += o;
    return *this;
  }
  Pkl& str(const std::string& v) {
    s.push_back('X');
    for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>(v.size() >> (8 * i)));
    s += v;
    return *this;
  }
  Pkl& i1(int v) {
    s.push_back('K');
    s.push_back(static_cast<char>(v));
    return *this;
  }
  // {"w": _rebuild_tensor_v2(storage(key "0", FloatStorage, numel), offset, size, stride)}
  static std::string tensor_dict(int numel, int offset, std::vector<int> size,
                                 std::vector<int> stride) {
    Pkl p;
    p.op("}").str("w").op("ctorch._utils\n_rebuild_tensor_v2\n(");
    p.op("(").str("storage").op("ctorch\nFloatStorage\n").str("0").str("cpu").i1(numel).op("tQ");
    p.i1(offset).op("(");
    for (int v : size) p.i1(v);
    p.op("t(");
    for (int v : stride) p.i1(v);
    p.op("t\x89}tRs.");
    return p.s;
  }
};

void write_archive(const std::string& path, const std::string& pkl,
                   const std::vector<std::pair<std::string, std::string>>& records) {
  caffe2::serialize::PyTorchStreamWriter w(path);
  w.writeRecord("data.pkl", pkl.data(), pkl.size());
  for (const auto& r : records) w.writeRecord(r.first, r.second.data(), r.second.size());
  w.writeEndOfFile();
}

// Containers nested 150,000 deep (lists, tuples, dicts) or cyclic: a clear error naming the
// file, never a stack overflow in the loader or in the value's destructor.
TEST(TensorIO, DeepOrCyclicPicklesAreErrorsNotCrashes) {
  TempDir dir;
  const int n = 150000;
  auto deep = [&](char open, const std::string& close) {
    std::string pkl = "\x80\x02";
    for (int i = 0; i < n; ++i) pkl += open;
    for (int i = 0; i + 1 < n; ++i) pkl += close;
    return pkl + ".";
  };
  const std::string path = dir.file("deep.pt");
  // Lists: EMPTY_LIST x n, APPEND x (n - 1).
  write_archive(path, deep(']', "a"), {});
  testing::expect_error_contains([&] { core::load_torch_checkpoint(path); },
                                 {"deep.pt", "nested deeper than"});
  // Tuples: EMPTY_TUPLE, then TUPLE1 around it n times.
  std::string tup = "\x80\x02)";
  for (int i = 0; i < n; ++i) tup += "\x85";
  write_archive(path, tup + ".", {});
  testing::expect_error_contains([&] { core::load_torch_checkpoint(path); },
                                 {"deep.pt", "nested deeper than"});
  // A list that contains itself: EMPTY_LIST, BINPUT 0, BINGET 0, APPEND.
  write_archive(path, std::string("\x80\x02]q\x00" "h\x00" "a.", 9), {});
  testing::expect_error_contains([&] { core::load_torch_checkpoint(path); },
                                 {"deep.pt", "cyclic"});
  // Weight loading and inspection go through the same loader.
  write_archive(path, deep(']', "a"), {});
  testing::expect_error_contains([&] { core::load_weights(path); }, {"deep.pt"});
}

TEST(TensorIO, HandMadeArchiveWithOddPrefixLoads) {
  TempDir dir;
  const std::string path = dir.file("odd_prefix_name.pth");  // records under odd_prefix_name/
  std::string bytes(6 * 4, '\0');
  for (int i = 0; i < 6; ++i) {
    float f = static_cast<float>(i);
    std::memcpy(&bytes[4 * i], &f, 4);
  }
  write_archive(path, Pkl::tensor_dict(6, 0, {3, 2}, {1, 3}), {{"data/0", bytes}});
  auto w = core::load_weights(path).at("w");
  EXPECT_TRUE(torch::equal(w, torch::arange(6.0f).view({2, 3}).t()));
}

TEST(TensorIO, CorruptArchivesGiveClearErrors) {
  TempDir dir;
  const std::string p = dir.file("bad.pth");
  const std::string data24(24, '\0');
  // View needs element 5 (offset 0, size (3,2), stride (2,1)) but the storage has 4.
  write_archive(p, Pkl::tensor_dict(4, 0, {3, 2}, {2, 1}), {{"data/0", std::string(16, '\0')}});
  testing::expect_error_contains([&] { core::load_weights(p); },
                                 {p, "needs element 5", "only 4 elements", "near key 'w'"});
  // Offset pushes the view out of the storage.
  write_archive(p, Pkl::tensor_dict(6, 3, {6}, {1}), {{"data/0", data24}});
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "needs element 8"});
  // Storage numel larger than its record.
  write_archive(p, Pkl::tensor_dict(100, 0, {6}, {1}), {{"data/0", data24}});
  testing::expect_error_contains([&] { core::load_weights(p); },
                                 {p, "data/0 has 24 bytes", "wants 400"});
  // Record missing.
  write_archive(p, Pkl::tensor_dict(6, 0, {6}, {1}), {});
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "data/0", "missing"});
  // Unknown opcode.
  write_archive(p, std::string("\x80\x02}\xff", 4), {});
  testing::expect_error_contains([&] { core::load_weights(p); },
                                 {p, "data.pkl byte 3", "unsupported pickle opcode 0xff"});
  // Stack underflow and a non-storage persistent id.
  write_archive(p, "\x80\x02s.", {});
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "stack underflow"});
  write_archive(p, Pkl().op("(").str("storage").op("tQ.").s, {});
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "persistent id"});
  // Unsupported tensor kinds are refused, unknown classes are not.
  write_archive(p, Pkl().op("ctorch._utils\n_rebuild_qtensor\n)R.").s, {});
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "_rebuild_qtensor"});
  write_archive(p, Pkl().op("cmy.mod\nThing\n)R}").str("a").i1(1).op("sb.").s, {});
  auto obj = core::load_torch_checkpoint(p);
  EXPECT_EQ(obj.toGenericDict().at("__class__").toStringRef(), "my.mod.Thing");
  EXPECT_EQ(obj.toGenericDict().at("a").toInt(), 1);
  // A zip without data.pkl (e.g. a TorchScript archive).
  {
    caffe2::serialize::PyTorchStreamWriter w(p);
    w.writeRecord("constants.pkl", "x", 1);
    w.writeEndOfFile();
  }
  testing::expect_error_contains([&] { core::load_weights(p); }, {p, "no data.pkl"});
}

TEST(TensorIO, TruncatedAndGarbageFilesGiveClearErrors) {
  TempDir dir;
  Sample s = make_sample();
  const std::string good = dir.file("good.pt");
  core::save_torch_checkpoint(good, s.obj);
  const std::string bytes = core::read_file(good);
  const std::string cut = dir.file("cut.pt");
  for (size_t keep : {bytes.size() - 1, bytes.size() - 30, bytes.size() / 2, size_t(100),
                      size_t(10), size_t(4)}) {
    SCOPED_TRACE(keep);
    core::write_file_atomic(cut, bytes.substr(0, keep));
    testing::expect_error_contains([&] { core::load_weights(cut); }, {cut});
    testing::expect_error_contains([&] { core::load_torch_checkpoint(cut); }, {cut, "zip"});
  }
  // A truncated pickle inside an intact archive.
  c10::IValue obj = core::load_torch_checkpoint(good);
  {
    caffe2::serialize::PyTorchStreamReader r(good);
    auto pkl = r.getRecord("data.pkl");
    std::string text(static_cast<const char*>(std::get<0>(pkl).get()), std::get<1>(pkl));
    write_archive(cut, text.substr(0, text.size() / 2), {});
    testing::expect_error_contains([&] { core::load_weights(cut); }, {cut, "data.pkl"});
  }
  // Flipped central-directory bytes.
  std::string broken = bytes;
  for (size_t i = broken.size() - 60; i < broken.size() - 10; ++i) broken[i] ^= 0x5a;
  core::write_file_atomic(cut, broken);
  testing::expect_error_contains([&] { core::load_weights(cut); }, {cut});

  // Neither zip nor safetensors; empty; missing; legacy pickle; a directory.
  const std::string txt = dir.file("notes.pth");
  core::write_file_atomic(txt, "hello, this is not a checkpoint\n");
  testing::expect_error_contains([&] { core::load_weights(txt); },
                                 {txt, "not a supported weight file", "safetensors", "zip"});
  const std::string empty = dir.file("empty.pt");
  core::write_file_atomic(empty, "");
  testing::expect_error_contains([&] { core::load_weights(empty); }, {empty, "0 bytes"});
  testing::expect_error_contains([&] { core::load_weights(dir.file("nope.pt")); },
                                 {dir.file("nope.pt"), "cannot open"});
  const std::string legacy = dir.file("legacy.pt");
  core::write_file_atomic(legacy,
                          std::string("\x80\x02\x8a\x0al\xfc\x9c\x46\xf9\x20j\xa8P\x19.", 15));
  testing::expect_error_contains([&] { core::load_weights(legacy); }, {legacy, "legacy"});
  testing::expect_error_contains([&] { core::load_weights(dir.path()); },
                                 {dir.path(), "not a regular file"});
}

TEST(TensorIO, MutatedFilesNeverCrash) {
  // Random byte flips in data.pkl (inside an intact archive) and anywhere in the file: each
  // load either succeeds or throws. CAUSVID_FUZZ_ITERS raises the count for a longer run.
  TempDir dir;
  Sample s = make_sample();
  const std::string good = dir.file("good.pt");
  core::save_torch_checkpoint(good, s.obj);
  const std::string bytes = core::read_file(good);
  std::string pkl;
  std::vector<std::pair<std::string, std::string>> records;
  {
    caffe2::serialize::PyTorchStreamReader r(good);
    for (const auto& name : r.getAllRecords()) {
      auto rec = r.getRecord(name);
      std::string b(static_cast<const char*>(std::get<0>(rec).get()), std::get<1>(rec));
      if (name == "data.pkl")
        pkl = b;
      else if (name.rfind("data/", 0) == 0)
        records.emplace_back(name, b);
    }
  }
  ASSERT_FALSE(pkl.empty());
  const char* env = std::getenv("CAUSVID_FUZZ_ITERS");
  const int iters = env ? std::atoi(env) : 150;
  std::mt19937 rng(1234);
  const std::string p = dir.file("fuzz.pt");
  int loaded = 0, failed = 0;
  for (int i = 0; i < iters; ++i) {
    const bool whole_file = i % 3 == 2;
    std::string m = whole_file ? bytes : pkl;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) {
      const size_t at = rng() % m.size();
      m[at] = static_cast<char>(rng() % 4 == 0 ? rng() : m[at] ^ (1u << (rng() % 8)));
    }
    if (whole_file)
      core::write_file_atomic(p, m);
    else
      write_archive(p, m, records);
    try {
      core::NamedValues others;
      core::TensorMap t = core::flatten_tensors(core::load_torch_checkpoint(p), "", &others);
      for (auto& kv : t) kv.second.sum();  // touch the bytes of every view
      ++loaded;
    } catch (const std::exception& e) {
      ++failed;
    }
  }
  std::printf("  %d mutated files: %d loaded, %d rejected with an error\n", iters, loaded, failed);
}

// ---------------------------------------------------------------- causvid inspect

TEST(TensorIO, InspectPrintsKeysShapesAndTotals) {
  TempDir dir;
  Sample s = make_sample();
  const std::string pt = dir.file("model.pt");
  core::save_torch_checkpoint(pt, s.obj);
  const std::string bin = testing::causvid_binary();
  std::string out;
  ASSERT_EQ(testing::run_command(bin + " inspect " + pt, &out), 0) << out;
  EXPECT_NE(out.find("generator.model.blocks.0.weight"), std::string::npos) << out;
  EXPECT_NE(out.find("[4, 3]"), std::string::npos) << out;
  EXPECT_NE(out.find("BF16"), std::string::npos) << out;
  EXPECT_NE(out.find("extra.step = 123456789012"), std::string::npos) << out;
  int64_t params = 0, bytes = 0;
  for (const auto& kv : core::flatten_tensors(s.obj)) {
    params += kv.second.numel();
    bytes += kv.second.numel() * kv.second.element_size();
  }
  EXPECT_NE(out.find("total: 15 tensors, " + std::to_string(params) + " parameters"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(std::to_string(bytes) + " bytes"), std::string::npos) << out;

  ASSERT_EQ(testing::run_command(bin + " inspect --filter critic. --max-keys 2 " + pt, &out), 0);
  EXPECT_EQ(out.find("generator."), std::string::npos) << out;
  EXPECT_NE(out.find("7 more tensors not shown"), std::string::npos) << out;
  EXPECT_NE(out.find("total: 9 tensors"), std::string::npos) << out;

  const std::string st = dir.file("w.safetensors");
  core::save_safetensors(st, {{"a", torch::zeros({2, 3}, torch::kBFloat16)}}, {{"format", "pt"}});
  ASSERT_EQ(testing::run_command(bin + " inspect " + st, &out), 0) << out;
  EXPECT_NE(out.find("safetensors"), std::string::npos) << out;
  EXPECT_NE(out.find("total: 1 tensors, 6 parameters"), std::string::npos) << out;
  EXPECT_NE(out.find("12 bytes"), std::string::npos) << out;

  // Bad input: non-zero exit and a message naming the file.
  const std::string bad = dir.file("bad.pth");
  core::write_file_atomic(bad, core::read_file(pt).substr(0, 200));
  EXPECT_NE(testing::run_command(bin + " inspect " + bad, &out), 0);
  EXPECT_NE(out.find(bad), std::string::npos) << out;
  EXPECT_NE(testing::run_command(bin + " inspect " + dir.file("missing.pt"), &out), 0);
  EXPECT_NE(out.find("cannot open"), std::string::npos) << out;
  EXPECT_NE(testing::run_command(bin + " inspect --max-keys x " + pt, &out), 0);
}

}  // namespace
}  // namespace causvid
