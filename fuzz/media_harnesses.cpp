// fuzz/media_harnesses.cpp: images and videos through FFmpeg, and the rows of CausVid's
// array LMDBs (see harness.h).
#include "data/array_lmdb.h"
#include "data/image_io.h"
#include "data/video_io.h"
#include "fuzz/harness.h"

namespace causvid::fuzz {

void fuzz_image(const uint8_t* data, size_t size) {
  const std::string path = scratch_file("img", data, size, ".png");
  expect_clean(path, [&] { touch(data::read_image(path)); });
}

void fuzz_video(const uint8_t* data, size_t size) {
  const std::string path = scratch_file("vid", data, size, ".mp4");
  expect_clean(path, [&] {
    data::probe_video(path);
    data::DecodeOptions o;
    o.width = 32;
    o.height = 16;
    o.target_fps = 8;
    o.num_frames = 4;
    o.allow_fewer = true;
    o.threads = 1;
    touch(data::decode_video(path, o).frames);
  });
}

// The input is "<shape value>\n<row bytes>"; the dtype is float16 (CausVid's), or float32
// when the shape line starts with 'f'.
void fuzz_lmdb_rows(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t nl = std::min(in.find('\n'), in.size());
  std::string shape_line = in.substr(0, nl);
  auto dtype = torch::kHalf;
  if (!shape_line.empty() && shape_line[0] == 'f') {
    dtype = torch::kFloat32;
    shape_line.erase(0, 1);
  }
  const std::string_view row =
      nl < in.size() ? std::string_view(in).substr(nl + 1) : std::string_view();
  std::vector<int64_t> shape;
  int64_t numel = 0;
  if (!data::parse_array_shape(shape_line, &shape, &numel).empty()) return;
  if (numel < 0 || shape.empty()) finding("parse_array_shape accepted a bad shape");
  expect_clean("latents_0_data", [&] {
    touch(data::decode_array_row(row, std::vector<int64_t>(shape.begin() + 1, shape.end()),
                                 dtype, "data.mdb: key 'latents_0_data'"));
  });
}

}  // namespace causvid::fuzz
