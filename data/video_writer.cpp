// data/video_writer.cpp: VideoWriter (libav encoder with a temp file renamed on close) and
// RawFrameWriter; see video_io.h. Split from video_io.cpp.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/log.h"
#include "data/av_internal.h"

namespace causvid::data {

using namespace detail;  // NOLINT: this file's own helpers

// ------------------------------------------------------------------ VideoWriter
namespace {

std::atomic<bool> g_warned_fallback{false};

bool is_mp4_like(const AVOutputFormat* of) {
  std::string n = of->name;
  return n == "mp4" || n == "mov" || n == "ipod" || n == "ismv";
}

std::string tmp_name_for(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

// Fails early (before any frame is generated) when the output cannot be created.
void check_writable(const std::string& path) {
  std::error_code ec;
  TORCH_CHECK(!std::filesystem::is_directory(path, ec), path,
              ": is a directory, want an output file path");
  std::string probe = path + ".probe." + std::to_string(::getpid());
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  TORCH_CHECK(f != nullptr, path, ": cannot create output file: ", std::strerror(errno));
  std::fclose(f);
  std::remove(probe.c_str());
}

// Replicates the last column / row so that both sizes are even.
torch::Tensor pad_to_even(const torch::Tensor& x) {
  torch::Tensor y = x;
  if (y.size(3) % 2) y = torch::cat({y, y.narrow(3, y.size(3) - 1, 1)}, 3);
  if (y.size(2) % 2) y = torch::cat({y, y.narrow(2, y.size(2) - 1, 1)}, 2);
  return y.contiguous();
}

// Opens encoder `name` for a width x height yuv420p BT.709 stream at `fr` with the options'
// quality settings; returns nullptr (and why) when it is missing or refuses the settings.
CodecContextPtr open_encoder(const std::string& name, const WriterOptions& opts, int width,
                             int height, AVRational fr, bool global_header,
                             const std::string& path, std::string* why) {
  const AVCodec* codec = avcodec_find_encoder_by_name(name.c_str());
  if (!codec) {
    *why = "is not in this FFmpeg build";
    return nullptr;
  }
  CodecContextPtr c(avcodec_alloc_context3(codec));
  TORCH_CHECK(c, path, ": avcodec_alloc_context3: out of memory");
  c->width = width;
  c->height = height;
  c->pix_fmt = AV_PIX_FMT_YUV420P;
  c->time_base = av_inv_q(fr);
  c->framerate = fr;
  c->thread_count = opts.threads;
  c->color_range = AVCOL_RANGE_MPEG;
  c->colorspace = AVCOL_SPC_BT709;
  c->color_primaries = AVCOL_PRI_BT709;
  c->color_trc = AVCOL_TRC_BT709;
  if (global_header) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  AVDictionary* d = nullptr;
  std::string cname = codec->name;
  if (cname == "libx264") {
    av_dict_set(&d, "crf", std::to_string(opts.crf).c_str(), 0);
    av_dict_set(&d, "preset", opts.preset.c_str(), 0);
    if (opts.streaming) av_dict_set(&d, "tune", "zerolatency", 0);
  } else if (cname == "mpeg4") {
    c->flags |= AV_CODEC_FLAG_QSCALE;
    int q = std::clamp(int(std::lround(opts.crf / 6.0)), 1, 31);
    c->global_quality = FF_QP2LAMBDA * q;
    c->max_b_frames = 0;
  }
  if (opts.streaming) c->max_b_frames = 0;
  int rc = avcodec_open2(c.get(), codec, &d);
  av_dict_free(&d);
  if (rc < 0) {
    std::string detail = take_last_av_error();
    *why = "failed to open: " + av_error_string(rc) + (detail.empty() ? "" : " (" + detail + ")");
    return nullptr;
  }
  return c;
}

}  // namespace

VideoWriter::VideoWriter(const std::string& path, const WriterOptions& opts, int width, int height)
    : path_(path), tmp_path_(tmp_name_for(path)), opts_(opts) {
  init_av_logging();
  TORCH_CHECK(!path.empty(), "VideoWriter: empty output path");
  TORCH_CHECK(opts.fps > 0 && std::isfinite(opts.fps), path, ": fps ", opts.fps, ", want > 0");
  TORCH_CHECK(opts.crf >= 0 && opts.crf <= 51, path, ": crf ", opts.crf, ", want 0..51");
  const AVOutputFormat* of = av_guess_format(nullptr, path.c_str(), nullptr);
  TORCH_CHECK(of, path, ": unknown container for this file name; want .mp4 (or .mov/.mkv)");
  TORCH_CHECK(!opts.streaming || is_mp4_like(of), path,
              ": streaming mode writes fragmented mp4; want a .mp4/.mov path, got container '",
              of->name, "'");
  write_path_ = opts.streaming ? path_ : tmp_path_;
  check_writable(path_);
  if (width > 0 && height > 0) open(width, height);
}

VideoWriter::~VideoWriter() {
  if (closed_) return;
  if (!opened_) return;
  if (opts_.streaming) {
    try {
      encode(nullptr);
      av_write_trailer(fmt_.get());
    } catch (...) {
    }
    LOG_WARN("%s: VideoWriter destroyed without close(); kept the %d frames written so far", path_,
             num_frames_);
    fmt_.reset();
    closed_ = true;
    return;
  }
  LOG_WARN("%s: VideoWriter destroyed without close(); discarded %d frames", path_, num_frames_);
  abandon();
}

void VideoWriter::abandon() noexcept {
  enc_.reset();
  sws_.reset();
  fmt_.reset();  // closes the file
  if (!opts_.streaming) std::remove(tmp_path_.c_str());
  closed_ = true;
}

std::string VideoWriter::codec_name() const {
  return codec_name_.empty() ? opts_.codec : codec_name_;
}

void VideoWriter::open(int width, int height) {
  src_width_ = width;
  src_height_ = height;
  if ((width % 2 || height % 2) && opts_.odd_size == OddSize::kError) {
    TORCH_CHECK(false, path_, ": frame size ", width, "x", height,
                " is odd; yuv420p (H.264/MPEG-4) needs even width and height: resize, or set "
                "WriterOptions::odd_size = OddSize::kPad to replicate the last column/row");
  }
  width_ = width + width % 2;
  height_ = height + height % 2;
  bool created = false;
  try {
    open_streams(&created);
  } catch (...) {
    // Nothing half-made stays behind: not the contexts, not the (temporary) file.
    enc_.reset();
    sws_.reset();
    fmt_.reset();
    if (created) std::remove(write_path_.c_str());
    throw;
  }
  opened_ = true;
}

void VideoWriter::open_streams(bool* created) {
  const AVOutputFormat* of = av_guess_format(nullptr, path_.c_str(), nullptr);
  AVFormatContext* raw = nullptr;
  check_av(avformat_alloc_output_context2(&raw, of, nullptr, write_path_.c_str()), path_,
           "create output context");
  fmt_.reset(raw);

  AVRational fr = av_d2q(opts_.fps, 1000000);
  std::string why;
  const bool global_header = fmt_->oformat->flags & AVFMT_GLOBALHEADER;
  auto try_open = [&](const std::string& name, std::string* reason) {
    return open_encoder(name, opts_, width_, height_, fr, global_header, path_, reason);
  };
  enc_ = try_open(opts_.codec, &why);
  if (!enc_) {
    std::string why2;
    if (opts_.codec != "mpeg4") enc_ = try_open("mpeg4", &why2);
    TORCH_CHECK(enc_, path_, ": encoder '", opts_.codec, "' ", why,
                why2.empty() ? "" : "; fallback 'mpeg4' " + why2);
    if (!g_warned_fallback.exchange(true))
      LOG_WARN(
          "%s: encoder '%s' %s; falling back to 'mpeg4' (MPEG-4 part 2, larger files, "
          "lower quality). Install FFmpeg with libx264 for H.264 output.",
          path_, opts_.codec, why);
  }

  codec_name_ = enc_->codec->name;
  AVStream* st = avformat_new_stream(fmt_.get(), nullptr);
  TORCH_CHECK(st, path_, ": avformat_new_stream: out of memory");
  check_av(avcodec_parameters_from_context(st->codecpar, enc_.get()), path_,
           "copy encoder parameters");
  st->time_base = enc_->time_base;
  st->avg_frame_rate = fr;
  stream_index_ = st->index;

  if (!(fmt_->oformat->flags & AVFMT_NOFILE)) {
    check_av(avio_open(&fmt_->pb, write_path_.c_str(), AVIO_FLAG_WRITE), path_,
             "open for writing (" + write_path_ + ")");
    *created = true;
  }
  AVDictionary* mux = nullptr;
  if (is_mp4_like(fmt_->oformat)) {
    av_dict_set(&mux, "movflags",
                opts_.streaming ? "empty_moov+frag_custom+default_base_moof" : "+faststart", 0);
  }
  int rc = avformat_write_header(fmt_.get(), &mux);
  av_dict_free(&mux);
  check_av(rc, path_, "write header");

  sws_.reset(sws_getContext(width_, height_, AV_PIX_FMT_GBRP, width_, height_, AV_PIX_FMT_YUV420P,
                            SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP, nullptr, nullptr,
                            nullptr));
  TORCH_CHECK(sws_, path_, ": swscale cannot convert RGB to yuv420p");
  // RGB (full range) -> BT.709 limited-range YUV, as tagged on the stream above.
  sws_setColorspaceDetails(sws_.get(), sws_getCoefficients(SWS_CS_ITU709), 1,
                           sws_getCoefficients(SWS_CS_ITU709), 0, 0, 1 << 16, 1 << 16);
  yuv_ = make_frame();
  yuv_->format = AV_PIX_FMT_YUV420P;
  yuv_->width = width_;
  yuv_->height = height_;
  yuv_->color_range = AVCOL_RANGE_MPEG;
  yuv_->colorspace = AVCOL_SPC_BT709;
  yuv_->color_primaries = AVCOL_PRI_BT709;
  yuv_->color_trc = AVCOL_TRC_BT709;
  check_av(av_frame_get_buffer(yuv_.get(), 0), path_, "allocate frame");
  pkt_ = make_packet();
}

void VideoWriter::encode(AVFrame* frame) {
  check_av(avcodec_send_frame(enc_.get(), frame), path_,
           frame ? "encode frame " + std::to_string(num_frames_) : std::string("flush encoder"));
  AVStream* st = fmt_->streams[stream_index_];
  while (true) {
    int rc = avcodec_receive_packet(enc_.get(), pkt_.get());
    if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) break;
    check_av(rc, path_, "receive encoded packet");
    av_packet_rescale_ts(pkt_.get(), enc_->time_base, st->time_base);
    pkt_->stream_index = stream_index_;
    rc = av_write_frame(fmt_.get(), pkt_.get());
    av_packet_unref(pkt_.get());
    check_av(rc, path_, "write packet");
    ++num_packets_;
  }
}

void VideoWriter::add_frames(const torch::Tensor& frames) {
  TORCH_CHECK(!closed_, path_, ": add_frames after close() or after an error");
  init_av_logging();
  torch::Tensor x = frames_to_uint8(frames, path_, opts_.truncate_float);
  const int h = int(x.size(2)), w = int(x.size(3));
  if (!opened_) {
    open(w, h);
  } else {
    TORCH_CHECK(w == src_width_ && h == src_height_, path_, ": frames of ", w, "x", h, ", want ",
                src_width_, "x", src_height_, " (the size of the first frames)");
  }
  if (w != width_ || h != height_) x = pad_to_even(x);
  try {
    for (int64_t i = 0; i < x.size(0); ++i) {
      check_av(av_frame_make_writable(yuv_.get()), path_, "make frame writable");
      torch::Tensor f = x[i];
      uint8_t* src[4];
      int stride[4];
      gbrp_planes(f, src, stride);
      int rows = sws_scale(sws_.get(), src, stride, 0, height_, yuv_->data, yuv_->linesize);
      TORCH_CHECK(rows > 0, path_, ": swscale RGB -> yuv420p failed");
      yuv_->pts = num_frames_;
      // Streaming: each block starts with a keyframe so every fragment decodes on its own.
      yuv_->pict_type = (opts_.streaming && i == 0) ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
      encode(yuv_.get());
      ++num_frames_;
    }
    if (opts_.streaming) {
      if (num_packets_ != num_frames_)
        LOG_WARN("%s: encoder holds %d frames back; they appear in the next fragment", path_,
                 num_frames_ - num_packets_);
      check_av(av_write_frame(fmt_.get(), nullptr), path_, "flush fragment");
      avio_flush(fmt_->pb);
      check_av(fmt_->pb->error, path_, "write fragment");
    }
  } catch (...) {
    abandon();
    throw;
  }
}

void VideoWriter::close() {
  if (closed_) return;
  if (!opened_) {
    closed_ = true;
    TORCH_CHECK(false, path_, ": no frames were added; refusing to write an empty video");
  }
  init_av_logging();
  try {
    encode(nullptr);
    check_av(av_write_trailer(fmt_.get()), path_, "write trailer");
    if (fmt_->pb) {
      check_av(fmt_->pb->error, path_, "write");
      check_av(avio_closep(&fmt_->pb), path_, "close");
    }
    if (!opts_.streaming) {
      TORCH_CHECK(std::rename(tmp_path_.c_str(), path_.c_str()) == 0, path_, ": rename from ",
                  tmp_path_, " failed: ", std::strerror(errno));
    }
  } catch (...) {
    abandon();
    throw;
  }
  enc_.reset();
  sws_.reset();
  fmt_.reset();
  closed_ = true;
}

void write_video(const std::string& path, const torch::Tensor& frames, const WriterOptions& opts) {
  VideoWriter w(path, opts);
  w.add_frames(frames);
  w.close();
}

// ------------------------------------------------------------------ RawFrameWriter
RawFrameWriter::RawFrameWriter(const std::string& path) : path_(path) {
  TORCH_CHECK(!path.empty(), "RawFrameWriter: empty output path");
  if (path == "-") {
    f_ = stdout;
    ::signal(SIGPIPE, SIG_IGN);
    return;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
    ::signal(SIGPIPE, SIG_IGN);
    f_ = std::fopen(path.c_str(), "wb");
    TORCH_CHECK(f_, path, ": cannot open for writing: ", std::strerror(errno));
    owns_ = true;
    return;
  }
  TORCH_CHECK(!(::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)), path,
              ": is a directory, want an output file path");
  tmp_ = tmp_name_for(path);
  f_ = std::fopen(tmp_.c_str(), "wb");
  TORCH_CHECK(f_, path, ": cannot create output file (", tmp_, "): ", std::strerror(errno));
  owns_ = atomic_ = true;
}

RawFrameWriter::~RawFrameWriter() {
  if (closed_) return;
  if (owns_ && f_) std::fclose(f_);
  if (atomic_) std::remove(tmp_.c_str());
  if (!owns_ && f_) std::fflush(f_);
}

void RawFrameWriter::add_frames(const torch::Tensor& frames) {
  TORCH_CHECK(!closed_, path_, ": add_frames after close()");
  torch::Tensor x = frames_to_uint8(frames, path_);
  const int h = int(x.size(2)), w = int(x.size(3));
  if (num_frames_ == 0) {
    width_ = w;
    height_ = h;
  }
  TORCH_CHECK(w == width_ && h == height_, path_, ": frames of ", w, "x", h, ", want ", width_, "x",
              height_, " (the size of the first frames)");
  torch::Tensor hwc = x.permute({0, 2, 3, 1}).contiguous();  // [F,H,W,3] packed rgb24
  size_t n = size_t(hwc.numel());
  size_t wrote = std::fwrite(hwc.data_ptr<uint8_t>(), 1, n, f_);
  TORCH_CHECK(wrote == n && std::fflush(f_) == 0, path_, ": write failed after ", wrote, " of ", n,
              " bytes: ", std::strerror(errno),
              errno == EPIPE ? " (the reader closed the pipe)" : "");
  num_frames_ += x.size(0);
}

void RawFrameWriter::close() {
  if (closed_) return;
  closed_ = true;
  if (!owns_) {
    TORCH_CHECK(std::fflush(f_) == 0, path_, ": flush failed: ", std::strerror(errno));
    return;
  }
  bool ok = std::fflush(f_) == 0;
  if (atomic_) ok = ok && ::fsync(fileno(f_)) == 0;
  int err = errno;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  if (!ok) {
    if (atomic_) std::remove(tmp_.c_str());
    TORCH_CHECK(false, path_, ": flush/close failed: ", std::strerror(err));
  }
  if (atomic_) {
    TORCH_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0, path_, ": rename from ", tmp_,
                " failed: ", std::strerror(errno));
  }
}

}  // namespace causvid::data
