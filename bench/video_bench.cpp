// bench/video_bench.cpp: video encode/decode throughput (frames per second) at CausVid's
// output size 832x480, through data/video_io. Baselines measured in the same run: encode is
// compared with the raw RGB writer (no compression) and mpeg4; decode with a plain uint8
// decode (resampling/resizing/float conversion are reported as ratios to it).
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include "bench/benches.h"
#include "data/video_io.h"

namespace causvid::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Best of `reps` runs (seconds).
double best_of(int reps, const std::function<void()>& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

// Moving colored pattern with detail (a harder case than flat colors), [F,3,H,W] uint8.
torch::Tensor synthetic_video(int64_t f, int64_t h, int64_t w) {
  auto t = torch::arange(f, torch::kFloat32).view({f, 1, 1});
  auto y = torch::arange(h, torch::kFloat32).view({1, h, 1});
  auto x = torch::arange(w, torch::kFloat32).view({1, 1, w});
  auto r = 128 + 100 * torch::sin(x / 13.0 + t * 0.4) * torch::cos(y / 29.0);
  auto g = 128 + 100 * torch::cos((x + y) / 31.0 - t * 0.2);
  auto b = 128 + 60 * torch::sin(x * y / 4000.0 + t * 0.1) + 20 * torch::sin(x / 2.0);
  return torch::stack({r.expand({f, h, w}), g.expand({f, h, w}), b.expand({f, h, w})}, 1)
      .clamp(0, 255)
      .to(torch::kUInt8)
      .contiguous();
}

struct Row {
  std::string name;
  double seconds;
};

// Encoder rows: the raw rgb24 baseline, x264 presets, streaming fmp4, mpeg4; files in scratch.
std::vector<Row> bench_encode(const torch::Tensor& video, const std::string& scratch,
                              const std::string& raw, int reps, int threads) {
  const int64_t nf = video.size(0);
  std::vector<Row> enc;
  enc.push_back({"raw rgb24 write (baseline)", best_of(reps, [&] {
                   data::RawFrameWriter rw(raw);
                   rw.add_frames(video);
                   rw.close();
                 })});
  auto encode_with = [&](const std::string& name, const std::string& file, data::WriterOptions o,
                         int64_t block) {
    o.threads = threads;
    std::string codec;
    double s = best_of(reps, [&] {
      data::VideoWriter vw(file, o);
      for (int64_t i = 0; i < nf; i += block)
        vw.add_frames(video.narrow(0, i, std::min(block, nf - i)));
      vw.close();
      codec = vw.codec_name();
    });
    enc.push_back({name + " [" + codec + "]", s});
  };
  data::WriterOptions o;
  o.fps = 16;
  encode_with("mp4 crf18 medium", scratch + "/x264.mp4", o, nf);
  data::WriterOptions fast = o;
  fast.preset = "veryfast";
  encode_with("mp4 crf18 veryfast", scratch + "/x264fast.mp4", fast, nf);
  data::WriterOptions st = o;
  st.streaming = true;
  encode_with("streaming fmp4, 12-frame blocks", scratch + "/stream.mp4", st, 12);
  data::WriterOptions m4 = o;
  m4.codec = "mpeg4";
  encode_with("mp4 mpeg4 q3", scratch + "/mpeg4.mp4", m4, nf);

  return enc;
}

void print_report(const std::vector<Row>& enc, const std::vector<Row>& dec, int64_t nf,
                  const std::string& scratch, const std::string& raw) {
  namespace fs = std::filesystem;
  std::printf("\n%-48s %10s %10s %8s\n", "encode", "seconds", "frames/s", "ratio");
  for (const auto& r : enc)
    std::printf("%-48s %10.3f %10.1f %8.2f\n", r.name.c_str(), r.seconds, nf / r.seconds,
                enc[0].seconds / r.seconds);
  std::printf("\n%-48s %10s %10s %8s\n", "decode (source: the crf18 medium mp4)", "seconds",
              "frames/s", "ratio");
  for (const auto& r : dec)
    std::printf("%-48s %10.3f %10.1f %8.2f\n", r.name.c_str(), r.seconds, nf / r.seconds,
                dec[0].seconds / r.seconds);
  std::printf("(ratio = baseline seconds / row seconds; > 1 is faster than the baseline)\n");
  std::printf(
      "file sizes: crf18 medium %.1f KiB, veryfast %.1f KiB, streaming %.1f KiB, "
      "mpeg4 %.1f KiB, raw %.1f KiB\n",
      fs::file_size(scratch + "/x264.mp4") / 1024.0,
      fs::file_size(scratch + "/x264fast.mp4") / 1024.0,
      fs::file_size(scratch + "/stream.mp4") / 1024.0,
      fs::file_size(scratch + "/mpeg4.mp4") / 1024.0, fs::file_size(raw) / 1024.0);
}

}  // namespace

int bench_video(const VideoBenchArgs& a) {
  const auto& frames_s = a.frames;
  const auto& width_s = a.width;
  const auto& height_s = a.height;
  const auto& reps_s = a.reps;
  const auto& threads_s = a.threads;
  const auto& dir = a.dir;
  const int64_t nf = frames_s;
  const int w = width_s;
  const int h = height_s;
  const int reps = reps_s;
  const int threads = threads_s;
  TORCH_CHECK(nf > 0 && w > 0 && h > 0 && reps > 0,
              "bench video: --frames/--width/--height/"
              "--reps must be > 0");

  namespace fs = std::filesystem;
  std::string scratch = dir;
  bool own_dir = scratch.empty();
  if (own_dir) {
    std::string tmpl = (fs::temp_directory_path() / "causvid_bench_XXXXXX").string();
    TORCH_CHECK(::mkdtemp(tmpl.data()), "bench video: mkdtemp failed");
    scratch = tmpl;
  }
  torch::Tensor video = synthetic_video(nf, h, w);
  std::printf("video bench: %lld frames %dx%d, threads=%d, best of %d\n", (long long)nf, w, h,
              threads, reps);

  const std::string raw = scratch + "/bench.rgb";
  std::vector<Row> enc = bench_encode(video, scratch, raw, reps, threads), dec;
  const std::string file = scratch + "/x264.mp4";
  auto decode_with = [&](const std::string& name, data::DecodeOptions d, bool to_float) {
    d.threads = threads;
    int64_t n = 0;
    double s = best_of(reps, [&] {
      torch::Tensor v = to_float ? data::read_video_float(file, d) : data::read_video(file, d);
      n = v.size(0);
    });
    dec.push_back({name + " (" + std::to_string(n) + " out)", s});
  };
  decode_with("decode h264 -> uint8 (baseline)", {}, false);
  decode_with("decode -> float [-1,1]", {}, true);
  data::DecodeOptions half;
  half.width = w / 2;
  half.height = h / 2;
  decode_with("decode + SWS_AREA resize to half", half, false);
  {
    int64_t n = 0;
    double s = best_of(reps, [&] { n = data::read_video(scratch + "/mpeg4.mp4").size(0); });
    dec.push_back({"decode mpeg4 -> uint8 (" + std::to_string(n) + " out)", s});
  }

  print_report(enc, dec, nf, scratch, raw);
  if (own_dir) {
    std::error_code ec;
    fs::remove_all(scratch, ec);
  }
  return 0;
}

}  // namespace causvid::bench
