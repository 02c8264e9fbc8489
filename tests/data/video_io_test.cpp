// tests/data/video_io_test.cpp: data/video_io + data/image_io. Every test makes its own
// small videos (synthetic moving patterns), so no fixture files are needed.
#include "data/video_io.h"

extern "C" {
#include <libavformat/avformat.h>
}

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/fs.h"
#include "data/image_io.h"
#include "tests/test_util.h"

namespace causvid::data {
namespace {

using causvid::testing::expect_error_contains;
using causvid::testing::run_command;
using causvid::testing::TempDir;
namespace fs = std::filesystem;

// Smooth moving color pattern [F,3,H,W] uint8 (smooth so that 4:2:0 + H.264 stay within a
// few levels).
torch::Tensor moving_pattern(int64_t f, int64_t h, int64_t w) {
  auto t = torch::arange(f, torch::kFloat32).view({f, 1, 1});
  auto y = torch::arange(h, torch::kFloat32).view({1, h, 1});
  auto x = torch::arange(w, torch::kFloat32).view({1, 1, w});
  const double pi2 = 2 * M_PI;
  auto r = 128 + 90 * torch::sin(pi2 * (x / w + t / 16.0));
  auto g = 128 + 90 * torch::cos(pi2 * (y / h) + t * 0.3);
  auto b = 40 + 160 * (x + y) / double(w + h) + 0 * t;
  return torch::stack({r.expand({f, h, w}), g.expand({f, h, w}), b.expand({f, h, w})}, 1)
      .round()
      .clamp(0, 255)
      .to(torch::kUInt8)
      .contiguous();
}

// Frame i is a uniform gray of level 8*i (identifiable after lossy coding).
torch::Tensor indexed_gray(int64_t f, int64_t h, int64_t w) {
  auto lv = (torch::arange(f, torch::kFloat32) * 8).view({f, 1, 1, 1});
  return lv.expand({f, 3, h, w}).to(torch::kUInt8).contiguous();
}

double mean_abs_err(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().mean().item<double>();
}

// Files in `dir` whose name contains `needle` (left-over temporaries).
int count_files_containing(const std::string& dir, const std::string& needle) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(needle) != std::string::npos) ++n;
  return n;
}

void expect_no_output(const TempDir& dir, const std::string& name) {
  EXPECT_FALSE(fs::exists(dir.file(name))) << name << " must not exist";
  EXPECT_EQ(count_files_containing(dir.path(), ".tmp."), 0) << "left-over temporary file";
  EXPECT_EQ(count_files_containing(dir.path(), ".probe."), 0) << "left-over probe file";
}

bool have_tool(const std::string& tool) {
  return run_command("command -v " + tool + " >/dev/null") == 0;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A container with a video stream header and no packets.
void write_zero_frame_video(const std::string& path) {
  AVFormatContext* oc = nullptr;
  ASSERT_GE(avformat_alloc_output_context2(&oc, nullptr, nullptr, path.c_str()), 0);
  AVStream* st = avformat_new_stream(oc, nullptr);
  st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
  st->codecpar->codec_id = AV_CODEC_ID_MPEG4;
  st->codecpar->codec_tag = 0;
  st->codecpar->width = 64;
  st->codecpar->height = 48;
  st->codecpar->format = AV_PIX_FMT_YUV420P;
  st->time_base = AVRational{1, 16};
  ASSERT_GE(avio_open(&oc->pb, path.c_str(), AVIO_FLAG_WRITE), 0);
  ASSERT_GE(avformat_write_header(oc, nullptr), 0);
  ASSERT_GE(av_write_trailer(oc), 0);
  avio_closep(&oc->pb);
  avformat_free_context(oc);
}

// ---------------------------------------------------------------- round trips
TEST(VideoIO, H264RoundTripProbeAndPixels) {
  TempDir dir;
  const std::string path = dir.file("clip.mp4");
  auto frames = moving_pattern(20, 64, 96);
  WriterOptions o;
  o.fps = 16;
  VideoWriter w(path, o);
  w.add_frames(frames.narrow(0, 0, 7));  // incremental blocks
  w.add_frames(frames.narrow(0, 7, 13));
  EXPECT_FALSE(fs::exists(path)) << "final name must appear only on close()";
  w.close();
  EXPECT_EQ(w.codec_name(), "libx264");
  ASSERT_TRUE(fs::exists(path));
  EXPECT_EQ(count_files_containing(dir.path(), ".tmp."), 0);

  VideoInfo info = probe_video(path);
  EXPECT_EQ(info.width, 96);
  EXPECT_EQ(info.height, 64);
  EXPECT_NEAR(info.fps, 16.0, 1e-6);
  EXPECT_EQ(info.num_frames, 20);
  EXPECT_TRUE(info.num_frames_exact);
  EXPECT_NEAR(info.duration_s, 20 / 16.0, 0.07);
  EXPECT_EQ(info.codec, "h264");

  DecodedVideo v = decode_video(path);
  ASSERT_EQ(v.frames.sizes(), (std::vector<int64_t>{20, 3, 64, 96}));
  EXPECT_EQ(v.frames.scalar_type(), torch::kUInt8);
  EXPECT_NEAR(v.fps, 16.0, 1e-6);
  ASSERT_EQ(v.times_s.size(), 20u);
  EXPECT_NEAR(v.times_s[5], 5 / 16.0, 1e-3);
  double err = mean_abs_err(v.frames, frames);
  EXPECT_LT(err, 3.0) << "mean abs error in 0..255 levels";
  // Float path: [-1,1] and consistent with the uint8 one.
  auto f = read_video_float(path);
  EXPECT_LE(f.max().item<float>(), 1.0f);
  EXPECT_GE(f.min().item<float>(), -1.0f);
  EXPECT_TRUE(torch::allclose(f, uint8_to_float(v.frames)));
}

TEST(VideoIO, FloatInputAndConversions) {
  auto u = moving_pattern(2, 8, 10);
  auto f = uint8_to_float(u);
  EXPECT_TRUE(torch::equal(float_to_uint8(f), u));
  // diffusers' truncation: 0.999 * 255 -> 254.
  auto t = torch::full({1}, 0.999 * 2 - 1, torch::kFloat32);
  EXPECT_EQ(float_to_uint8(t, /*truncate=*/true).item<uint8_t>(), 254);
  EXPECT_EQ(float_to_uint8(t).item<uint8_t>(), 255);

  TempDir dir;
  const std::string path = dir.file("float.mp4");
  auto frames = moving_pattern(6, 32, 48);
  write_video(path, uint8_to_float(frames));
  EXPECT_LT(mean_abs_err(read_video(path), frames), 3.0);
}

TEST(VideoIO, StreamingFileIsValidWhileGrowing) {
  TempDir dir;
  const std::string path = dir.file("live.mp4");
  auto frames = moving_pattern(12, 48, 64);
  WriterOptions o;
  o.streaming = true;
  VideoWriter w(path, o);
  w.add_frames(frames.narrow(0, 0, 6));
  ASSERT_TRUE(fs::exists(path)) << "streaming writes under the final name";
  // A reader that opens the file now sees the first block.
  fs::copy_file(path, dir.file("snapshot1.mp4"));
  DecodeOptions lenient;
  lenient.strict = false;
  auto v1 = read_video(dir.file("snapshot1.mp4"), lenient);
  EXPECT_EQ(v1.size(0), 6);
  EXPECT_LT(mean_abs_err(v1, frames.narrow(0, 0, 6)), 3.0);
  w.add_frames(frames.narrow(0, 6, 6));
  fs::copy_file(path, dir.file("snapshot2.mp4"));
  EXPECT_EQ(read_video(dir.file("snapshot2.mp4"), lenient).size(0), 12);
  w.close();
  auto v = read_video(path);
  EXPECT_EQ(v.size(0), 12);
  EXPECT_LT(mean_abs_err(v, frames), 3.0);
}

TEST(VideoIO, PlayableWithFfprobe) {
  if (!have_tool("ffprobe")) GTEST_SKIP() << "ffprobe not installed";
  TempDir dir;
  for (bool streaming : {false, true}) {
    const std::string path = dir.file(streaming ? "s.mp4" : "n.mp4");
    WriterOptions o;
    o.streaming = streaming;
    VideoWriter w(path, o);
    w.add_frames(moving_pattern(9, 48, 64));
    w.add_frames(moving_pattern(9, 48, 64));
    w.close();
    std::string out;
    int rc = run_command(
        "ffprobe -v error -count_frames -select_streams v:0 -show_entries "
        "stream=codec_name,pix_fmt,width,height,nb_read_frames -of csv=p=0 '" +
            path + "'",
        &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("h264,64,48,yuv420p,18"), std::string::npos) << out;
  }
}

TEST(VideoIO, FallsBackToMpeg4WhenEncoderMissing) {
  TempDir dir;
  const std::string path = dir.file("fallback.mp4");
  WriterOptions o;
  o.codec = "no_such_encoder_xyz";
  auto frames = moving_pattern(8, 48, 64);
  VideoWriter w(path, o);
  w.add_frames(frames);
  w.close();
  EXPECT_EQ(w.codec_name(), "mpeg4");
  EXPECT_EQ(probe_video(path).codec, "mpeg4");
  EXPECT_LT(mean_abs_err(read_video(path), frames), 6.0);
}

TEST(VideoIO, OddSizePadOption) {
  TempDir dir;
  const std::string path = dir.file("pad.mp4");
  WriterOptions o;
  o.odd_size = OddSize::kPad;
  auto frames = moving_pattern(4, 47, 63);
  VideoWriter w(path, o);
  w.add_frames(frames);
  w.close();
  EXPECT_EQ(w.width(), 64);
  EXPECT_EQ(w.height(), 48);
  auto v = read_video(path);
  ASSERT_EQ(v.sizes(), (std::vector<int64_t>{4, 3, 48, 64}));
  EXPECT_LT(mean_abs_err(v.narrow(2, 0, 47).narrow(3, 0, 63), frames), 3.0);
}

// ---------------------------------------------------------------- resampling
TEST(VideoIO, ResampleIndicesRule) {
  std::vector<double> t30;
  for (int i = 0; i < 30; ++i) t30.push_back(i / 30.0);
  auto prev = resample_indices(t30, 1.0, 16, FrameSelect::kPrevious);
  ASSERT_EQ(prev.size(), 16u);
  for (int k = 0; k < 16; ++k) EXPECT_EQ(prev[k], (k * 30) / 16) << "k=" << k;
  auto near = resample_indices(t30, 1.0, 16, FrameSelect::kNearest);
  ASSERT_EQ(near.size(), 16u);
  for (int k = 0; k < 16; ++k) {
    double exact = k * 30.0 / 16.0;
    int64_t want = std::lround(std::floor(exact + 0.5 - 1e-9));  // ties -> earlier
    EXPECT_EQ(near[k], want) << "k=" << k;
  }
  // Upsampling duplicates frames: 8 fps -> 16 fps.
  std::vector<double> t8 = {0, 0.125, 0.25, 0.375};
  auto up = resample_indices(t8, 0.5, 16, FrameSelect::kPrevious);
  EXPECT_EQ(up, (std::vector<int64_t>{0, 0, 1, 1, 2, 2, 3, 3}));
  // Irregular timestamps: choose by time, not by position.
  std::vector<double> irr = {0, 0.01, 0.02, 0.5, 0.9};
  auto ir = resample_indices(irr, 1.0, 4, FrameSelect::kPrevious);
  EXPECT_EQ(ir, (std::vector<int64_t>{0, 2, 3, 3}));  // t = 0, .25, .5, .75
}

TEST(VideoIO, Decode30To16FpsPicksFramesByTime) {
  TempDir dir;
  const std::string path = dir.file("30fps.mp4");
  WriterOptions o;
  o.fps = 30;
  write_video(path, indexed_gray(30, 32, 32), o);
  for (FrameSelect sel : {FrameSelect::kPrevious, FrameSelect::kNearest}) {
    DecodeOptions d;
    d.target_fps = 16;
    d.select = sel;
    DecodedVideo v = decode_video(path, d);
    ASSERT_EQ(v.frames.size(0), 16);
    EXPECT_EQ(v.num_decoded, 30);
    EXPECT_NEAR(v.fps, 16.0, 1e-9);
    for (int k = 0; k < 16; ++k) {
      double exact = k * 30.0 / 16.0;
      int64_t want = sel == FrameSelect::kPrevious ? int64_t(std::floor(exact))
                                                   : int64_t(std::floor(exact + 0.5 - 1e-9));
      EXPECT_EQ(v.source_index[k], want) << "k=" << k;
      EXPECT_NEAR(v.times_s[k], k / 16.0, 1e-9);
      double level = v.frames[k].to(torch::kFloat32).mean().item<double>();
      EXPECT_NEAR(level, 8.0 * want, 3.0) << "content of output frame " << k;
    }
  }
  // First N output frames at the target fps, decoding stops early.
  DecodeOptions d;
  d.target_fps = 16;
  d.num_frames = 5;
  DecodedVideo v = decode_video(path, d);
  EXPECT_EQ(v.frames.size(0), 5);
  EXPECT_LT(v.num_decoded, 30);
}

TEST(VideoIO, FirstNFramesAndTooShort) {
  TempDir dir;
  const std::string path = dir.file("short.mp4");
  write_video(path, indexed_gray(10, 32, 32));
  DecodeOptions d;
  d.num_frames = 4;
  auto v = decode_video(path, d);
  EXPECT_EQ(v.frames.size(0), 4);
  EXPECT_EQ(v.source_index, (std::vector<int64_t>{0, 1, 2, 3}));
  d.num_frames = 81;
  expect_error_contains([&] { decode_video(path, d); },
                        {path, "too short", "has 10 frames", "want 81"});
  d.allow_fewer = true;
  EXPECT_EQ(decode_video(path, d).frames.size(0), 10);
}

// ---------------------------------------------------------------- resize + aspect
TEST(VideoIO, ResizeAntialiases) {
  // 1-pixel checkerboard: any antialiased 4x downscale gives flat gray; point sampling
  // would give pure black or white.
  auto yy = torch::arange(128).view({128, 1});
  auto xx = torch::arange(128).view({1, 128});
  auto cb = ((yy + xx) % 2 * 255).to(torch::kUInt8).expand({3, 128, 128}).contiguous();
  for (ResizeFilter f : {ResizeFilter::kAuto, ResizeFilter::kArea, ResizeFilter::kLanczos}) {
    auto r = resize_frames(cb, 32, 32, f).to(torch::kFloat32);
    ASSERT_EQ(r.sizes(), (std::vector<int64_t>{3, 32, 32}));
    EXPECT_NEAR(r.mean().item<double>(), 127.5, 3.0);
    EXPECT_LT(r.std().item<double>(), 8.0) << "aliasing";
  }
  // Decoding with a target size resizes; center_crop keeps the aspect.
  TempDir dir;
  const std::string path = dir.file("resize.mp4");
  write_video(path, moving_pattern(3, 64, 96));
  DecodeOptions d;
  d.width = 48;
  d.height = 32;
  EXPECT_EQ(read_video(path, d).sizes(), (std::vector<int64_t>{3, 3, 32, 48}));
  d.height = 0;  // follows the aspect
  EXPECT_EQ(read_video(path, d).sizes(), (std::vector<int64_t>{3, 3, 32, 48}));
  d.width = 32;
  d.height = 32;
  d.center_crop = true;
  auto c = read_video(path, d);
  EXPECT_EQ(c.sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
  // The crop is the central 64x64 of the source: compare with resizing that region.
  auto src = read_video(path);
  auto ref = resize_frames(src.narrow(3, 16, 64), 32, 32);
  EXPECT_LT(mean_abs_err(c, ref), 3.0);
}

TEST(VideoIO, AspectRule) {
  // process_mixkit.py: |w/h - 16/9| <= 16/9 * 0.1
  EXPECT_TRUE(is_aspect_16_9(1920, 1080));
  EXPECT_TRUE(is_aspect_16_9(1280, 720));
  EXPECT_TRUE(is_aspect_16_9(832, 480));
  EXPECT_TRUE(is_aspect_16_9(1600, 1000));   // 1.6: exactly at the edge (0.1778)
  EXPECT_FALSE(is_aspect_16_9(1590, 1000));  // 1.59
  EXPECT_FALSE(is_aspect_16_9(640, 480));
  EXPECT_FALSE(is_aspect_16_9(1080, 1920));
  EXPECT_FALSE(is_aspect_16_9(0, 0));
  EXPECT_TRUE(aspect_matches(640, 480, 4.0 / 3.0, 0.01));
}

// ---------------------------------------------------------------- images
TEST(ImageIO, PngRoundTripAndContactSheet) {
  TempDir dir;
  auto img = moving_pattern(1, 37, 53)[0];
  write_png(dir.file("a.png"), img);
  auto back = read_image(dir.file("a.png"));
  EXPECT_TRUE(torch::equal(back, img)) << "PNG is lossless";
  write_png(dir.file("f.png"), uint8_to_float(img));
  EXPECT_TRUE(torch::equal(read_image(dir.file("f.png")), img));
  EXPECT_TRUE(torch::allclose(read_image_float(dir.file("f.png")), uint8_to_float(img)));
  EXPECT_EQ(count_files_containing(dir.path(), ".tmp."), 0);

  auto frames = indexed_gray(5, 10, 12);
  GridOptions g;
  g.num_cols = 3;
  g.padding = 2;
  g.pad_value = 255;
  auto grid = make_grid(frames, g);
  ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{3, 2 * 12 + 2, 3 * 14 + 2}));
  EXPECT_EQ(grid[0][0][0].item<uint8_t>(), 255);                        // padding
  EXPECT_EQ(grid[0][2 + 12 + 2][2 + 14].item<uint8_t>(), 8 * 4);        // frame 4 at (1,1)
  EXPECT_EQ(grid[0][2 + 12 + 2][2 + 2 * 14 + 1].item<uint8_t>(), 255);  // empty cell
  write_contact_sheet(dir.file("sheet.png"), indexed_gray(20, 10, 12), g, /*max_frames=*/6);
  auto sheet = read_image(dir.file("sheet.png"));
  EXPECT_EQ(sheet.sizes(), (std::vector<int64_t>{3, 2 * 12 + 2, 3 * 14 + 2}));
  EXPECT_EQ(sheet[0][2 + 12 + 2][2 + 2 * 14].item<uint8_t>(), 8 * 19);  // last frame kept
}

TEST(ImageIO, ReadsJpeg) {
  if (!have_tool("ffmpeg")) GTEST_SKIP() << "ffmpeg CLI not installed (used to make a JPEG)";
  TempDir dir;
  auto img = moving_pattern(1, 40, 56)[0];
  write_png(dir.file("a.png"), img);
  std::string out;
  ASSERT_EQ(run_command("ffmpeg -v error -y -i '" + dir.file("a.png") + "' -q:v 2 '" +
                            dir.file("a.jpg") + "'",
                        &out),
            0)
      << out;
  auto back = read_image(dir.file("a.jpg"));
  ASSERT_EQ(back.sizes(), img.sizes());
  EXPECT_LT(mean_abs_err(back, img), 4.0);
}

// ---------------------------------------------------------------- raw output
TEST(VideoIO, RawFrameWriterWritesPackedRgb) {
  TempDir dir;
  const std::string path = dir.file("frames.rgb");
  auto frames = moving_pattern(3, 6, 8);
  {
    RawFrameWriter w(path);
    w.add_frames(frames.narrow(0, 0, 2));
    w.add_frames(uint8_to_float(frames.narrow(0, 2, 1)));
    EXPECT_FALSE(fs::exists(path));
    w.close();
    EXPECT_EQ(w.num_frames(), 3);
  }
  std::string bytes = core::read_file(path);
  ASSERT_EQ(bytes.size(), size_t(3 * 6 * 8 * 3));
  auto hwc = frames.permute({0, 2, 3, 1}).contiguous();
  EXPECT_EQ(std::memcmp(bytes.data(), hwc.data_ptr<uint8_t>(), bytes.size()), 0);
  {
    RawFrameWriter w(dir.file("abandoned.rgb"));
    w.add_frames(frames);
  }  // no close(): nothing under the final name
  expect_no_output(dir, "abandoned.rgb");
  expect_error_contains([&] { RawFrameWriter w(dir.file("no_dir/x.rgb")); },
                        {"no_dir/x.rgb", "cannot create"});
}

TEST(VideoIO, RawFrameWriterStreamsToFifo) {
  TempDir dir;
  const std::string fifo = dir.file("pipe.rgb");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto frames = moving_pattern(4, 16, 24);
  std::string got;
  std::thread reader([&] {
    std::ifstream in(fifo, std::ios::binary);
    got.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  });
  {
    RawFrameWriter w(fifo);  // opens once the reader is there
    w.add_frames(frames.narrow(0, 0, 2));
    w.add_frames(frames.narrow(0, 2, 2));
    w.close();
  }
  reader.join();
  ASSERT_EQ(got.size(), size_t(4 * 16 * 24 * 3));
  auto hwc = frames.permute({0, 2, 3, 1}).contiguous();
  EXPECT_EQ(std::memcmp(got.data(), hwc.data_ptr<uint8_t>(), got.size()), 0);

  // A reader that goes away: a clear error (EPIPE), not a SIGPIPE crash.
  std::thread quitter([&] { std::ifstream in(fifo, std::ios::binary); });
  RawFrameWriter w(fifo);
  quitter.join();
  auto big = moving_pattern(1, 128, 128);
  bool failed = false;
  for (int i = 0; i < 200 && !failed; ++i) {
    try {
      w.add_frames(big);
    } catch (const c10::Error& e) {
      failed = true;
      EXPECT_NE(std::string(e.what()).find("pipe.rgb"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("write failed"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(failed);
}

// ---------------------------------------------------------------- bad input
TEST(VideoIOErrors, MissingAndNonVideoFiles) {
  TempDir dir;
  expect_error_contains([&] { probe_video(dir.file("missing.mp4")); },
                        {"missing.mp4", "no such file"});
  write_bytes(dir.file("notes.mp4"), "this is plain text, not a video\n");
  expect_error_contains([&] { decode_video(dir.file("notes.mp4")); },
                        {"notes.mp4", "open as video", "not a video"});
  expect_error_contains([&] { probe_video(dir.file("notes.mp4")); }, {"notes.mp4"});
  std::string junk(4096, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = char((i * 131 + 7) % 251);
  write_bytes(dir.file("junk.bin"), junk);
  expect_error_contains([&] { decode_video(dir.file("junk.bin")); }, {"junk.bin"});
  expect_error_contains([&] { decode_video(dir.path()); }, {"is a directory"});
  // A PNG is a valid image but read_video on it still works (one frame); an audio-only or
  // image-less file has no video stream:
  write_png(dir.file("one.png"), moving_pattern(1, 8, 8)[0]);
  EXPECT_EQ(read_video(dir.file("one.png")).size(0), 1);
}

TEST(VideoIOErrors, TruncatedMp4) {
  TempDir dir;
  const std::string path = dir.file("full.mp4");
  write_video(path, moving_pattern(24, 48, 64));
  std::string bytes = core::read_file(path);
  // faststart: the index is at the front, the frame data is cut.
  write_bytes(dir.file("cut_data.mp4"), bytes.substr(0, bytes.size() / 2));
  expect_error_contains([&] { decode_video(dir.file("cut_data.mp4")); },
                        {"cut_data.mp4", "truncated"});
  // Cut inside the header: nothing to open.
  write_bytes(dir.file("cut_head.mp4"), bytes.substr(0, 200));
  expect_error_contains([&] { decode_video(dir.file("cut_head.mp4")); }, {"cut_head.mp4"});
  // A streaming (fragmented) file cut mid-fragment still yields the complete fragments when
  // not strict, and is an error when strict (the default) only if the container declares
  // more frames.
  WriterOptions o;
  o.streaming = true;
  VideoWriter w(dir.file("frag.mp4"), o);
  w.add_frames(moving_pattern(6, 48, 64));
  w.add_frames(moving_pattern(6, 48, 64));
  w.close();
  std::string fb = core::read_file(dir.file("frag.mp4"));
  write_bytes(dir.file("frag_cut.mp4"), fb.substr(0, fb.size() - 200));
  DecodeOptions lenient;
  lenient.strict = false;
  try {
    auto v = read_video(dir.file("frag_cut.mp4"), lenient);
    EXPECT_GE(v.size(0), 6);
    EXPECT_LT(v.size(0), 12);
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("frag_cut.mp4"), std::string::npos) << e.what();
  }
}

TEST(VideoIOErrors, ZeroFrameVideo) {
  TempDir dir;
  // mp4 drops an empty track entirely; avi keeps the stream header with 0 frames.
  for (const std::string name : {"empty.mp4", "empty.avi"}) {
    const std::string path = dir.file(name);
    write_zero_frame_video(path);
    ASSERT_TRUE(fs::exists(path));
    try {
      VideoInfo info = probe_video(path);
      EXPECT_EQ(info.num_frames, 0) << name;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("zero-frame"), std::string::npos) << e.what();
    }
    expect_error_contains([&] { decode_video(path); }, {name, "zero-frame"});
  }
  // And the writer refuses to create one.
  {
    VideoWriter w(dir.file("none.mp4"));
    expect_error_contains([&] { w.close(); }, {"none.mp4", "no frames"});
  }
  expect_no_output(dir, "none.mp4");
}

TEST(VideoIOErrors, OddSize) {
  TempDir dir;
  const std::string path = dir.file("odd.mp4");
  {
    VideoWriter w(path);
    expect_error_contains([&] { w.add_frames(moving_pattern(2, 47, 64)); },
                          {"odd.mp4", "64x47", "odd", "even"});
  }
  expect_no_output(dir, "odd.mp4");
}

TEST(VideoIOErrors, UnwritableOutputPath) {
  TempDir dir;
  expect_error_contains(
      [&] { VideoWriter w(dir.file("no_such_dir/out.mp4")); },
      {"no_such_dir/out.mp4", "cannot create output file", "No such file or directory"});
  fs::create_directory(dir.file("adir.mp4"));
  expect_error_contains([&] { VideoWriter w(dir.file("adir.mp4")); },
                        {"adir.mp4", "is a directory"});
  expect_error_contains(
      [&] { write_png(dir.file("no_such_dir/a.png"), moving_pattern(1, 4, 4)[0]); },
      {"no_such_dir/a.png"});
  expect_error_contains([&] { VideoWriter w(dir.file("x.unknownext")); },
                        {"x.unknownext", "unknown container"});
  expect_no_output(dir, "no_such_dir");
}

TEST(VideoIOErrors, BadFramesAndAbandonedWriter) {
  TempDir dir;
  const std::string path = dir.file("bad.mp4");
  {
    VideoWriter w(path);
    expect_error_contains(
        [&] {
          w.add_frames(torch::zeros({2, 4, 16, 16}, torch::kUInt8));
        },
        {"bad.mp4", "want [F,3,H,W]"});
    expect_error_contains(
        [&] {
          w.add_frames(torch::zeros({2, 3, 16, 16}, torch::kInt32));
        },
        {"bad.mp4", "dtype"});
    w.add_frames(moving_pattern(2, 16, 16));
    expect_error_contains([&] { w.add_frames(moving_pattern(2, 32, 16)); },
                          {"bad.mp4", "16x32", "want 16x16"});
    EXPECT_FALSE(fs::exists(path));
  }  // destroyed without close(): discarded
  expect_no_output(dir, "bad.mp4");
  DecodeOptions d;
  d.target_fps = -1;
  write_video(path, moving_pattern(2, 16, 16));
  expect_error_contains([&] { decode_video(path, d); }, {"bad.mp4", "target_fps"});
}

}  // namespace
}  // namespace causvid::data
