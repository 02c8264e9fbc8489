// data/video_io.h: video decode/encode through FFmpeg's libav* (libavformat, libavcodec,
// libswscale) with RAII wrappers; no subprocess, no Python.
//
// Ports what the reference does with imageio/pyav, moviepy and diffusers' export_to_video:
//   - reading: distillation_data/compute_vae_latent.py (iio.imread(plugin="pyav") ->
//     [F,H,W,3] uint8 -> /255*2-1), here decode_video()/read_video_float() -> [F,3,H,W].
//   - preprocessing: distillation_data/process_mixkit.py (CausVid, from FastVideo):
//     is_16_9_ratio(w, h, tolerance=0.1) = |w/h - 16/9| <= 16/9 * 0.1, then a stretch resize
//     to (height, width) with anti-aliasing (skimage resize(anti_aliasing=True)) and a new
//     fps through moviepy (which takes, for output time t, the source frame floor(t * fps):
//     the previous frame). Here is_aspect_16_9(), DecodeOptions{width, height, target_fps}.
//   - writing: minimal_inference/*.py export_to_video(video, path, fps=16) -> VideoWriter.
// Deliberate differences:
//   - resize uses swscale (SWS_AREA for downscale by default; lanczos/bicubic/bilinear on
//     request) instead of skimage's gaussian prefilter + bilinear; both antialias, pixel
//     values differ slightly.
//   - float -> uint8 rounds ((x+1)*127.5, rounded, clamped); diffusers' export_to_video
//     truncates (frame*255).astype(uint8); WriterOptions::truncate_float reproduces that.
//   - YUV <-> RGB: the decoder honors the stream's color tags (BT.709/601/2020, limited/full
//     range), untagged streams are read as BT.601 limited (swscale's and ffmpeg's default).
//     The writer converts with BT.709 limited range and tags the stream so.
//
// Layout legend: F frames, 3 RGB channels (planar), H height, W width. uint8 tensors hold
// 0..255; float tensors hold [-1, 1] (the VAE's input range).
//
// Errors: every failing libav call goes through check_av(), which throws a c10::Error
// "<file>: <what> failed: <av_strerror text><hint>". Outputs never leave a partial file
// under their final name (VideoWriter writes "<path>.tmp.<pid>" and renames on close()),
// except in streaming mode, where the file is valid after every flushed block by design.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

struct AVFormatContext;
struct AVCodecContext;
struct AVFrame;
struct AVPacket;
struct SwsContext;

namespace causvid::data {

// ------------------------------------------------------------------ errors + RAII
// Returns a human readable text for a libav error code (av_strerror).
std::string av_error_string(int rc);
// Throws "<file>: <what> failed: <av_strerror text>[ hint]" when rc < 0; returns rc.
int check_av(int rc, const std::string& file, const std::string& what);
// Quiets libav's own stderr logging to errors only (called by every entry point once).
void init_av_logging();

struct AVFormatInputDeleter {
  void operator()(AVFormatContext* p) const;
};
struct AVFormatOutputDeleter {  // closes the AVIOContext too
  void operator()(AVFormatContext* p) const;
};
struct AVCodecContextDeleter {
  void operator()(AVCodecContext* p) const;
};
struct AVFrameDeleter {
  void operator()(AVFrame* p) const;
};
struct AVPacketDeleter {
  void operator()(AVPacket* p) const;
};
struct SwsContextDeleter {
  void operator()(SwsContext* p) const;
};
using FormatInputPtr = std::unique_ptr<AVFormatContext, AVFormatInputDeleter>;
using FormatOutputPtr = std::unique_ptr<AVFormatContext, AVFormatOutputDeleter>;
using CodecContextPtr = std::unique_ptr<AVCodecContext, AVCodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, AVFrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, AVPacketDeleter>;
using SwsContextPtr = std::unique_ptr<SwsContext, SwsContextDeleter>;

// ------------------------------------------------------------------ probing
struct VideoInfo {
  int width = 0, height = 0;
  double fps = 0;                 // average frame rate (avg_frame_rate, else r_frame_rate)
  int64_t num_frames = 0;         // container's frame count, else round(duration * fps)
  bool num_frames_exact = false;  // true when the container stores the count
  double duration_s = 0;          // stream duration, else the container's
  std::string codec;              // decoder name, e.g. "h264"
  std::string container;          // demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
  std::string pix_fmt;            // e.g. "yuv420p"
};
// Reads the headers only (plus what avformat_find_stream_info needs); does not decode the
// whole stream. Throws naming the file for a missing/non-video/corrupt file.
VideoInfo probe_video(const std::string& path);

// CausVid's process_mixkit.py rule: |w/h - 16/9| <= (16/9) * rel_tolerance.
bool is_aspect_16_9(int width, int height, double rel_tolerance = 0.1);
bool aspect_matches(int width, int height, double target_ratio, double rel_tolerance);

// ------------------------------------------------------------------ decoding
enum class ResizeFilter {
  kAuto,      // area averaging when shrinking (antialiased), bicubic when enlarging
  kArea,      // SWS_AREA
  kLanczos,   // SWS_LANCZOS (antialiased in swscale when shrinking)
  kBicubic,   // SWS_BICUBIC
  kBilinear,  // SWS_BILINEAR
};
// How temporal resampling picks the source frame for an output time t.
enum class FrameSelect {
  kPrevious,  // the last frame with pts <= t (moviepy/CausVid's preprocessing; default)
  kNearest,   // the frame whose pts is nearest to t (ties go to the earlier frame)
};

struct DecodeOptions {
  // Output size; 0 keeps the source size. With only one given, the other follows the
  // source aspect ratio (rounded to an even number).
  int width = 0, height = 0;
  ResizeFilter filter = ResizeFilter::kAuto;
  // false: stretch to (height, width) like process_mixkit.py. true: first crop the source
  // centrally to the output aspect ratio, then scale.
  bool center_crop = false;
  // > 0: resample to this fps by timestamps (output time k/target_fps from the first
  // frame; see FrameSelect). 0 keeps every decoded frame.
  double target_fps = 0;
  FrameSelect select = FrameSelect::kPrevious;
  // > 0: keep only the first num_frames output frames and stop decoding there. A video
  // with fewer frames is an error unless allow_fewer.
  int64_t num_frames = -1;
  bool allow_fewer = false;
  // When the whole file is read, fewer decoded frames than the container declares is an
  // error ("truncated or corrupt").
  bool strict = true;
  int threads = 0;  // decoder threads; 0 = libav's choice
};

struct DecodedVideo {
  torch::Tensor frames;               // [F,3,H,W] uint8
  std::vector<double> times_s;        // time of each output frame (from the first frame)
  std::vector<int64_t> source_index;  // decoded source frame used for each output frame
  double fps = 0;                     // output fps (target_fps, or the source's)
  VideoInfo info;                     // the source
  int64_t num_decoded = 0;            // source frames decoded
};

DecodedVideo decode_video(const std::string& path, const DecodeOptions& opts = {});
// [F,3,H,W] uint8.
torch::Tensor read_video(const std::string& path, const DecodeOptions& opts = {});
// [F,3,H,W] float32 in [-1,1] (x/127.5 - 1), the VAE's input.
torch::Tensor read_video_float(const std::string& path, const DecodeOptions& opts = {});

// uint8 [..] -> float32 [-1,1] and back (rounding, or truncation like diffusers).
torch::Tensor uint8_to_float(const torch::Tensor& x);
torch::Tensor float_to_uint8(const torch::Tensor& x, bool truncate = false);

// Resizes [F,3,H,W] (or [3,H,W]) uint8 frames with swscale (antialiased per filter).
torch::Tensor resize_frames(const torch::Tensor& frames, int height, int width,
                            ResizeFilter filter = ResizeFilter::kAuto);

// Temporal resampling by timestamps, streaming form. Feed each source frame's time in
// order; push() returns how many output slots the PREVIOUS source frame fills, finish()
// how many the last frame fills (up to end_time, the end of the last frame).
class FrameResampler {
 public:
  FrameResampler(double target_fps, FrameSelect select);
  int64_t push(double t);
  int64_t finish(double end_time);
  double output_time(int64_t k) const;  // relative to the first frame
  int64_t num_emitted() const { return next_k_; }

 private:
  int64_t emit_before(double boundary, bool inclusive);
  double fps_;
  FrameSelect select_;
  bool started_ = false;
  double t0_ = 0, prev_ = 0;
  int64_t next_k_ = 0;
};
// Same rule over a whole list: the source index for each output frame.
std::vector<int64_t> resample_indices(const std::vector<double>& src_times, double end_time,
                                      double target_fps, FrameSelect select);

// ------------------------------------------------------------------ encoding
enum class OddSize {
  kError,  // yuv420p needs even width and height: throw naming the file and the size
  kPad,    // replicate the last column/row to the next even size (output is 1 px larger)
};

struct WriterOptions {
  double fps = 16;  // CausVid/Wan save at 16 fps
  // Encoder name. "libx264" (H.264, yuv420p). When it is missing or fails to open, the
  // writer falls back to "mpeg4" (MPEG-4 part 2) and logs one warning per process.
  std::string codec = "libx264";
  int crf = 18;                   // libx264 quality (0 lossless .. 51); mpeg4: qscale ~ crf/6
  std::string preset = "medium";  // libx264 preset
  // Streaming: the file is written under its final name as fragmented mp4
  // (movflags empty_moov+frag_custom+default_base_moof); every add_frames() call ends a
  // fragment, so the file is a valid, playable mp4 holding all frames added so far while
  // it grows (a player or decode_video() can read it mid-generation). libx264 runs with
  // tune=zerolatency (no B-frames/lookahead) so no frames wait inside the encoder, and each
  // block starts with a keyframe. Only for .mp4/.mov/.m4v outputs.
  // Not streaming: "<path>.tmp.<pid>" + rename on close(), movflags +faststart.
  bool streaming = false;
  OddSize odd_size = OddSize::kError;
  bool truncate_float = false;  // float input: truncate like diffusers instead of rounding
  int threads = 0;              // encoder threads; 0 = libav's choice
};

// Incremental H.264 mp4 writer. The size is fixed by the first add_frames() call (or
// by the constructor's width/height when > 0).
//   WriterOptions o;  o.fps = 16;
//   VideoWriter w("out.mp4", o);
//   for (block : blocks) w.add_frames(block);   // [F,3,H,W] uint8 or float [-1,1]
//   w.close();                                   // trailer + rename; errors throw
// Destroying an unclosed writer discards the output (normal mode) or finalizes what was
// flushed (streaming mode), never throwing.
class VideoWriter {
 public:
  explicit VideoWriter(const std::string& path, const WriterOptions& opts = {}, int width = 0,
                       int height = 0);
  ~VideoWriter();
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  void add_frames(const torch::Tensor& frames);  // [F,3,H,W] or [3,H,W]
  void close();
  // Name of the encoder in use ("libx264" or the fallback).
  std::string codec_name() const;
  int64_t num_frames() const { return num_frames_; }
  const std::string& path() const { return path_; }
  // Output size (after odd-size padding).
  int width() const { return width_; }
  int height() const { return height_; }

 private:
  void open(int width, int height);
  void open_streams(bool* created);
  void encode(AVFrame* frame);  // nullptr flushes the encoder
  void abandon() noexcept;
  std::string path_, tmp_path_, write_path_, codec_name_;
  WriterOptions opts_;
  FormatOutputPtr fmt_;
  CodecContextPtr enc_;
  SwsContextPtr sws_;
  FramePtr yuv_;
  PacketPtr pkt_;
  int stream_index_ = 0;
  int src_width_ = 0, src_height_ = 0, width_ = 0, height_ = 0;
  int64_t num_frames_ = 0, num_packets_ = 0;
  bool opened_ = false, closed_ = false;
};

// Writes a whole clip in one call (normal mode: atomic).
void write_video(const std::string& path, const torch::Tensor& frames,
                 const WriterOptions& opts = {});

// Raw packed RGB24 output (H*W*3 bytes per frame, row-major HWC), e.g. for
// `ffplay -f rawvideo -pixel_format rgb24 -video_size WxH -framerate 16 -i -`.
// path "-" writes to stdout, a FIFO or character device is written directly (and SIGPIPE
// is ignored so a closed reader becomes an error, not a crash); a regular file is written to
// "<path>.tmp.<pid>" and renamed on close(). Every add_frames() call is flushed.
class RawFrameWriter {
 public:
  explicit RawFrameWriter(const std::string& path);
  ~RawFrameWriter();
  RawFrameWriter(const RawFrameWriter&) = delete;
  RawFrameWriter& operator=(const RawFrameWriter&) = delete;
  void add_frames(const torch::Tensor& frames);  // [F,3,H,W] / [3,H,W], uint8 or [-1,1]
  void close();
  int64_t num_frames() const { return num_frames_; }
  int width() const { return width_; }
  int height() const { return height_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool owns_ = false, atomic_ = false, closed_ = false;
  int width_ = 0, height_ = 0;
  int64_t num_frames_ = 0;
};

// Normalizes a frames argument to [F,3,H,W] uint8 contiguous (accepts [3,H,W]; float in
// [-1,1] is converted). `what` names the caller in errors.
torch::Tensor frames_to_uint8(const torch::Tensor& frames, const std::string& what,
                              bool truncate = false);

}  // namespace causvid::data
