// tests/core/safetensors_test.cpp: safetensors round trip and corrupt-file errors.
#include "core/safetensors.h"

#include <fstream>

#include "core/fs.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using testing::TempDir;

TEST(Safetensors, RoundTripAllDtypes) {
  TempDir dir;
  core::TensorMap in;
  in["a.f32"] = torch::randn({3, 4});
  in["b.f16"] = torch::randn({5}).to(torch::kFloat16);
  in["c.bf16"] = torch::randn({2, 2, 2}).to(torch::kBFloat16);
  in["d.f64"] = torch::randn({7}, torch::kFloat64);
  in["e.i64"] = torch::arange(10);
  in["f.i32"] = torch::arange(6, torch::kInt32).reshape({2, 3});
  in["g.u8"] = torch::arange(4, torch::kUInt8);
  in["h.bool"] = torch::tensor({true, false, true});
  in["i.scalar"] = torch::tensor(3.5f);
  in["j.empty"] = torch::zeros({0, 3});
  std::string path = dir.file("x.safetensors");
  core::save_safetensors(path, in, {{"format", "pt"}});
  core::SafetensorsFile f(path);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.keys().size(), in.size());
  for (const auto& kv : in) {
    auto t = f.tensor(kv.first);
    EXPECT_EQ(t.scalar_type(), kv.second.scalar_type()) << kv.first;
    EXPECT_TRUE(torch::equal(t, kv.second)) << kv.first;
  }
}

TEST(Safetensors, TruncatedFileIsAClearError) {
  TempDir dir;
  std::string path = dir.file("x.safetensors");
  core::save_safetensors(path, {{"w", torch::randn({64, 64})}});
  std::string bytes = core::read_file(path);
  std::string cut = dir.file("cut.safetensors");
  core::write_file_atomic(cut, bytes.substr(0, bytes.size() - 100));
  testing::expect_error_contains([&] { core::SafetensorsFile f(cut); }, {cut, "truncated"});
  core::write_file_atomic(cut, bytes.substr(0, 5));
  testing::expect_error_contains([&] { core::SafetensorsFile f(cut); }, {cut});
  core::write_file_atomic(cut, std::string("\xff\xff\xff\xff\x00\x00\x00\x00{}", 10));
  testing::expect_error_contains([&] { core::SafetensorsFile f(cut); }, {cut, "header length"});
}

TEST(Safetensors, CorruptHeaderIsAClearError) {
  TempDir dir;
  std::string p = dir.file("bad.safetensors");
  auto write_header = [&](const std::string& h, size_t data) {
    std::string s(8, '\0');
    uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
    core::write_file_atomic(p, s + h + std::string(data, '\0'));
  };
  write_header("{not json", 0);
  testing::expect_error_contains([&] { core::SafetensorsFile f(p); }, {"JSON"});
  write_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 16);
  testing::expect_error_contains([&] { core::SafetensorsFile f(p); }, {"'w'", "bytes"});
  write_header(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8);
  testing::expect_error_contains([&] { core::SafetensorsFile f(p); }, {"'w'", "Q4"});
  write_header(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8);
  testing::expect_error_contains([&] { core::SafetensorsFile f(p); }, {"'w'", "negative"});
  write_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8);
  testing::expect_error_contains([&] { core::SafetensorsFile f(p); }, {"'w'", "data_offsets"});
  // Issue #14: a name listed twice, and two tensors over the same bytes, are refused.
  write_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16);
  testing::expect_error_contains([&] { core::SafetensorsFile f(p); }, {p, "'w'", "twice"});
  write_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
  testing::expect_error_contains([&] { core::SafetensorsFile f(p); }, {p, "'a'", "'b'", "overlap"});
  // Empty tensors take no bytes and may share an offset.
  write_header(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
               R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
  EXPECT_EQ(core::SafetensorsFile(p).keys().size(), 2u);
}

TEST(Safetensors, MissingFile) {
  testing::expect_error_contains([] { core::SafetensorsFile f("/nonexistent/x.safetensors"); },
                                 {"/nonexistent/x.safetensors", "cannot open"});
}

}  // namespace
}  // namespace causvid
