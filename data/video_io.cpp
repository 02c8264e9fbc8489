// data/video_io.cpp: see video_io.h. libav* through RAII holders; every return code goes
// through check_av(); libav's own log lines are routed to LOG_DEBUG and the last error line
// is appended to the thrown message ("[libav: moov atom not found]"). This file: errors,
// conversion helpers (av_internal.h), probing, resampling, tensor conversions; decoding is in
// video_decode.cpp, encoding in video_writer.cpp.
#include "data/video_io.h"

#include "data/av_internal.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "core/log.h"

namespace causvid::data {

// ------------------------------------------------------------------ errors + logging
namespace {

thread_local std::string g_last_av_error;

void av_log_to_causvid(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > AV_LOG_WARNING && !core::log_enabled(core::LogLevel::kDebug)) return;
  char line[1024];
  int print_prefix = 1;
  va_list copy;
  va_copy(copy, vl);
  av_log_format_line2(avcl, level, fmt, copy, line, sizeof(line), &print_prefix);
  va_end(copy);
  std::string s(line);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  if (s.empty()) return;
  // "[mov,mp4 @ 0x55d0c0a1b2c0] msg" -> "[mov,mp4] msg": the address is noise.
  size_t at = s.find(" @ 0x");
  if (at != std::string::npos) {
    size_t end = s.find(']', at);
    if (end != std::string::npos) s.erase(at, end - at);
  }
  if (level <= AV_LOG_ERROR) g_last_av_error = s;
  LOG_DEBUG("libav: %s", s);
}

}  // namespace

std::string detail::take_last_av_error() {
  std::string s;
  s.swap(g_last_av_error);
  return s;
}

using detail::take_last_av_error;

namespace {

std::string hint_for(int rc) {
  if (rc == AVERROR_INVALIDDATA) return " (not a video/image file, or truncated/corrupt)";
  if (rc == AVERROR(ENOENT)) return " (no such file or directory)";
  if (rc == AVERROR(EACCES)) return " (permission denied)";
  if (rc == AVERROR(EISDIR)) return " (is a directory)";
  if (rc == AVERROR(ENOSPC)) return " (disk full)";
  if (rc == AVERROR_DECODER_NOT_FOUND) return " (this FFmpeg build has no decoder for it)";
  if (rc == AVERROR_ENCODER_NOT_FOUND) return " (this FFmpeg build has no such encoder)";
  return "";
}

}  // namespace

std::string av_error_string(int rc) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  if (av_strerror(rc, buf, sizeof(buf)) < 0) return "libav error " + std::to_string(rc);
  return buf;
}

int check_av(int rc, const std::string& file, const std::string& what) {
  if (rc >= 0) return rc;
  std::string detail = take_last_av_error();
  TORCH_CHECK(false, file, ": ", what, " failed: ", av_error_string(rc), hint_for(rc),
              detail.empty() ? "" : " [libav: " + detail + "]");
  return rc;
}

void init_av_logging() {
  static std::once_flag once;
  std::call_once(once, [] {
    av_log_set_level(AV_LOG_DEBUG);  // everything reaches the callback, which filters
    av_log_set_callback(av_log_to_causvid);
  });
  g_last_av_error.clear();
}

void AVFormatInputDeleter::operator()(AVFormatContext* p) const {
  if (p) avformat_close_input(&p);
}
void AVFormatOutputDeleter::operator()(AVFormatContext* p) const {
  if (!p) return;
  if (p->pb && !(p->oformat->flags & AVFMT_NOFILE)) avio_closep(&p->pb);
  avformat_free_context(p);
}
void AVCodecContextDeleter::operator()(AVCodecContext* p) const {
  if (p) avcodec_free_context(&p);
}
void AVFrameDeleter::operator()(AVFrame* p) const {
  if (p) av_frame_free(&p);
}
void AVPacketDeleter::operator()(AVPacket* p) const {
  if (p) av_packet_free(&p);
}
void SwsContextDeleter::operator()(SwsContext* p) const {
  if (p) sws_freeContext(p);
}

// ------------------------------------------------------------------ helpers
namespace detail {

FramePtr make_frame() {
  FramePtr f(av_frame_alloc());
  TORCH_CHECK(f, "av_frame_alloc: out of memory");
  return f;
}
PacketPtr make_packet() {
  PacketPtr p(av_packet_alloc());
  TORCH_CHECK(p, "av_packet_alloc: out of memory");
  return p;
}

int sws_flags_for(ResizeFilter filter, int sw, int sh, int dw, int dh) {
  int base;
  switch (filter) {
    case ResizeFilter::kArea:
      base = SWS_AREA;
      break;
    case ResizeFilter::kLanczos:
      base = SWS_LANCZOS;
      break;
    case ResizeFilter::kBicubic:
      base = SWS_BICUBIC;
      break;
    case ResizeFilter::kBilinear:
      base = SWS_BILINEAR;
      break;
    case ResizeFilter::kAuto:
    default:
      base = (dw < sw || dh < sh) ? SWS_AREA : SWS_BICUBIC;
      break;
  }
  return base | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP;
}

// `raw` is the frame's colorspace field read as an int: a damaged stream can leave a value
// outside the enum there (255 found by fuzz.video), and loading such an enum is undefined.
int sws_colorspace_of(int raw) {
  switch (raw) {
    case AVCOL_SPC_BT709:
      return SWS_CS_ITU709;
    case AVCOL_SPC_FCC:
      return SWS_CS_FCC;
    case AVCOL_SPC_SMPTE240M:
      return SWS_CS_SMPTE240M;
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL:
      return SWS_CS_BT2020;
    default:
      return SWS_CS_ITU601;  // untagged: what swscale/ffmpeg assume
  }
}

// yuvj* are deprecated aliases meaning "full range"; swscale wants the plain format.
AVPixelFormat normalize_pix_fmt(AVPixelFormat fmt, bool* full_range) {
  switch (fmt) {
    case AV_PIX_FMT_YUVJ420P:
      *full_range = true;
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      *full_range = true;
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      *full_range = true;
      return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
      *full_range = true;
      return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
      *full_range = true;
      return AV_PIX_FMT_YUV411P;
    default:
      return fmt;
  }
}

bool is_rgb_like(AVPixelFormat fmt) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(fmt);
  return d && ((d->flags & AV_PIX_FMT_FLAG_RGB) || d->nb_components <= 2 ||
               (d->flags & AV_PIX_FMT_FLAG_PAL));
}

// Plane pointers of a [3,H,W] uint8 tensor in GBRP order (swscale's planar RGB).
void gbrp_planes(torch::Tensor& chw, uint8_t* data[4], int linesize[4]) {
  int64_t w = chw.size(2);
  uint8_t* base = chw.data_ptr<uint8_t>();
  int64_t plane = chw.size(1) * w;
  data[0] = base + plane;      // G
  data[1] = base + 2 * plane;  // B
  data[2] = base;              // R
  data[3] = nullptr;
  linesize[0] = linesize[1] = linesize[2] = static_cast<int>(w);
  linesize[3] = 0;
}

torch::Tensor RgbConverter::convert(const AVFrame* in, int ow, int oh, ResizeFilter filter,
                                    bool center_crop, const std::string& path) {
  FramePtr cropped;
  const AVFrame* f = in;
  if (center_crop && in->width * (int64_t)oh != in->height * (int64_t)ow) {
    cropped.reset(av_frame_clone(in));
    TORCH_CHECK(cropped, path, ": av_frame_clone: out of memory");
    double target = double(ow) / oh;
    if (double(in->width) / in->height > target) {
      int cw = std::max(1, int(std::lround(in->height * target)));
      cropped->crop_left = (in->width - cw) / 2;
      cropped->crop_right = in->width - cw - cropped->crop_left;
    } else {
      int ch = std::max(1, int(std::lround(in->width / target)));
      cropped->crop_top = (in->height - ch) / 2;
      cropped->crop_bottom = in->height - ch - cropped->crop_top;
    }
    check_av(av_frame_apply_cropping(cropped.get(), AV_FRAME_CROP_UNALIGNED), path, "crop frame");
    f = cropped.get();
  }
  bool full_range = f->color_range == AVCOL_RANGE_JPEG;
  AVPixelFormat fmt = normalize_pix_fmt(static_cast<AVPixelFormat>(f->format), &full_range);
  int raw_cs = 0;
  static_assert(sizeof(raw_cs) == sizeof(f->colorspace), "AVColorSpace is an int-sized enum");
  std::memcpy(&raw_cs, &f->colorspace, sizeof(raw_cs));
  int cs = sws_colorspace_of(raw_cs);
  int flags = sws_flags_for(filter, f->width, f->height, ow, oh);
  SwsContext* ctx = sws_getCachedContext(sws_.release(), f->width, f->height, fmt, ow, oh,
                                         AV_PIX_FMT_GBRP, flags, nullptr, nullptr, nullptr);
  sws_.reset(ctx);
  TORCH_CHECK(ctx, path, ": cannot convert pixel format ",
              av_get_pix_fmt_name(fmt) ? av_get_pix_fmt_name(fmt) : "?", " ", f->width, "x",
              f->height, " to RGB ", ow, "x", oh);
  if (!is_rgb_like(fmt) && (ctx != last_ctx_ || cs != last_cs_ || full_range != last_range_)) {
    sws_setColorspaceDetails(ctx, sws_getCoefficients(cs), full_range ? 1 : 0,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    last_cs_ = cs;
    last_range_ = full_range;
  }
  last_ctx_ = ctx;
  torch::Tensor out = torch::empty({3, oh, ow}, torch::kUInt8);
  uint8_t* dst[4];
  int dst_stride[4];
  gbrp_planes(out, dst, dst_stride);
  int rows = sws_scale(ctx, f->data, f->linesize, 0, f->height, dst, dst_stride);
  TORCH_CHECK(rows > 0, path, ": swscale conversion failed (", rows, ")");
  return out;
}

InputVideo open_input(const std::string& path) {
  init_av_logging();
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  TORCH_CHECK(std::filesystem::exists(status), path, ": no such file");
  TORCH_CHECK(!std::filesystem::is_directory(status), path, ": is a directory, want a video file");
  InputVideo in;
  AVFormatContext* raw = nullptr;
  check_av(avformat_open_input(&raw, path.c_str(), nullptr, nullptr), path,
           "open as video (avformat_open_input)");
  in.fmt.reset(raw);
  check_av(avformat_find_stream_info(raw, nullptr), path, "read stream info");
  const AVCodec* codec = nullptr;
  int idx = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
  TORCH_CHECK(idx != AVERROR_STREAM_NOT_FOUND, path, ": no video stream in container '",
              raw->iformat->name, "' (a zero-frame, truncated or non-video file)");
  if (idx == AVERROR_DECODER_NOT_FOUND) {
    int s = av_find_best_stream(raw, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    const char* name = s >= 0 ? avcodec_get_name(raw->streams[s]->codecpar->codec_id) : "?";
    TORCH_CHECK(false, path, ": no decoder for video codec '", name, "' in this FFmpeg build");
  }
  check_av(idx, path, "find video stream");
  in.stream = idx;
  in.st = raw->streams[idx];
  in.codec = codec;
  // Attached pictures (cover art of an audio file) are not video.
  TORCH_CHECK(!(in.st->disposition & AV_DISPOSITION_ATTACHED_PIC), path,
              ": only an attached (cover) picture, no video stream");

  VideoInfo& info = in.info;
  const AVCodecParameters* par = in.st->codecpar;
  info.width = par->width;
  info.height = par->height;
  AVRational fr = in.st->avg_frame_rate;
  if (fr.num <= 0 || fr.den <= 0) fr = in.st->r_frame_rate;
  info.fps = (fr.num > 0 && fr.den > 0) ? av_q2d(fr) : 0.0;
  if (in.st->duration != AV_NOPTS_VALUE && in.st->duration > 0)
    info.duration_s = in.st->duration * av_q2d(in.st->time_base);
  else if (raw->duration != AV_NOPTS_VALUE && raw->duration > 0)
    info.duration_s = double(raw->duration) / AV_TIME_BASE;
  if (in.st->nb_frames > 0) {
    info.num_frames = in.st->nb_frames;
    info.num_frames_exact = true;
  } else if (info.duration_s > 0 && info.fps > 0) {
    info.num_frames = std::llround(info.duration_s * info.fps);
  }
  info.codec = avcodec_get_name(par->codec_id);
  info.container = raw->iformat->name;
  const char* pf = av_get_pix_fmt_name(static_cast<AVPixelFormat>(par->format));
  info.pix_fmt = pf ? pf : "";
  return in;
}

CodecContextPtr open_decoder(const InputVideo& in, int threads, const std::string& path) {
  CodecContextPtr dec(avcodec_alloc_context3(in.codec));
  TORCH_CHECK(dec, path, ": avcodec_alloc_context3: out of memory");
  check_av(avcodec_parameters_to_context(dec.get(), in.st->codecpar), path,
           "copy codec parameters");
  dec->thread_count = threads;
  dec->pkt_timebase = in.st->time_base;
  check_av(avcodec_open2(dec.get(), in.codec, nullptr), path,
           std::string("open decoder '") + in.codec->name + "'");
  return dec;
}

int even_round(double v) { return std::max(2, int(std::lround(v / 2.0)) * 2); }

int64_t frame_duration_ts(const AVFrame* f) {
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 30, 100)
  return f->duration;
#else
  return f->pkt_duration;
#endif
}

}  // namespace detail

using namespace detail;  // NOLINT: this file's own helpers

// ------------------------------------------------------------------ probing
VideoInfo probe_video(const std::string& path) { return open_input(path).info; }

bool aspect_matches(int width, int height, double target_ratio, double rel_tolerance) {
  if (width <= 0 || height <= 0) return false;
  return std::abs(double(width) / height - target_ratio) <= target_ratio * rel_tolerance;
}
bool is_aspect_16_9(int width, int height, double rel_tolerance) {
  return aspect_matches(width, height, 16.0 / 9.0, rel_tolerance);
}

// ------------------------------------------------------------------ resampling
namespace {
constexpr double kTimeEps = 1e-6;  // seconds; absorbs pts rounding (mp4 time bases)
}

FrameResampler::FrameResampler(double target_fps, FrameSelect select)
    : fps_(target_fps), select_(select) {
  TORCH_CHECK(target_fps > 0, "FrameResampler: target_fps: got ", target_fps, ", want > 0");
}

double FrameResampler::output_time(int64_t k) const { return double(k) / fps_; }

int64_t FrameResampler::emit_before(double boundary, bool inclusive) {
  int64_t n = 0;
  while (true) {
    double t = t0_ + output_time(next_k_);
    bool take = inclusive ? (t <= boundary + kTimeEps) : (t < boundary - kTimeEps);
    if (!take) break;
    ++next_k_;
    ++n;
  }
  return n;
}

int64_t FrameResampler::push(double t) {
  if (!started_) {
    started_ = true;
    t0_ = prev_ = t;
    return 0;
  }
  int64_t n;
  if (select_ == FrameSelect::kPrevious)
    n = emit_before(t, /*inclusive=*/false);  // t_k in [prev, t) -> prev
  else
    n = emit_before(0.5 * (prev_ + t), /*inclusive=*/true);  // ties -> earlier frame
  prev_ = t;
  return n;
}

int64_t FrameResampler::finish(double end_time) {
  if (!started_) return 0;
  return emit_before(end_time, /*inclusive=*/false);
}

std::vector<int64_t> resample_indices(const std::vector<double>& src_times, double end_time,
                                      double target_fps, FrameSelect select) {
  FrameResampler rs(target_fps, select);
  std::vector<int64_t> out;
  for (size_t i = 0; i < src_times.size(); ++i) {
    int64_t n = rs.push(src_times[i]);
    if (i > 0) out.insert(out.end(), n, int64_t(i) - 1);
  }
  if (!src_times.empty()) out.insert(out.end(), rs.finish(end_time), int64_t(src_times.size()) - 1);
  return out;
}


torch::Tensor uint8_to_float(const torch::Tensor& x) {
  TORCH_CHECK(x.scalar_type() == torch::kUInt8, "uint8_to_float: dtype ", x.scalar_type(),
              ", want uint8");
  return x.to(torch::kFloat32).div_(127.5).sub_(1.0);
}

torch::Tensor float_to_uint8(const torch::Tensor& x, bool truncate) {
  TORCH_CHECK(x.is_floating_point(), "float_to_uint8: dtype ", x.scalar_type(),
              ", want a floating type in [-1,1]");
  torch::Tensor v = torch::nan_to_num(x.to(torch::kFloat32), 0.0);
  if (truncate)  // diffusers export_to_video: (x*0.5+0.5).clamp(0,1) * 255 -> astype(uint8)
    return v.mul(0.5).add_(0.5).clamp_(0, 1).mul_(255).to(torch::kUInt8);
  return v.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch::kUInt8);
}

torch::Tensor frames_to_uint8(const torch::Tensor& frames, const std::string& what, bool truncate) {
  TORCH_CHECK(frames.defined(), what, ": frames tensor is undefined");
  torch::Tensor x = frames;
  if (x.dim() == 3) x = x.unsqueeze(0);
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3, what, ": frames shape ", frames.sizes(),
              ", want [F,3,H,W] or [3,H,W]");
  TORCH_CHECK(x.size(0) > 0 && x.size(2) > 0 && x.size(3) > 0, what, ": empty frames tensor ",
              frames.sizes());
  x = x.to(torch::kCPU);
  if (x.scalar_type() != torch::kUInt8) {
    TORCH_CHECK(x.is_floating_point(), what, ": frames dtype ", x.scalar_type(),
                ", want uint8 (0..255) or float in [-1,1]");
    x = float_to_uint8(x, truncate);
  }
  return x.contiguous();
}

torch::Tensor resize_frames(const torch::Tensor& frames, int height, int width,
                            ResizeFilter filter) {
  TORCH_CHECK(height > 0 && width > 0, "resize_frames: size ", width, "x", height, ", want > 0");
  bool single = frames.dim() == 3;
  torch::Tensor x = frames_to_uint8(frames, "resize_frames");
  const int sh = int(x.size(2)), sw = int(x.size(3));
  torch::Tensor out = torch::empty({x.size(0), 3, height, width}, torch::kUInt8);
  SwsContextPtr ctx(sws_getContext(sw, sh, AV_PIX_FMT_GBRP, width, height, AV_PIX_FMT_GBRP,
                                   sws_flags_for(filter, sw, sh, width, height), nullptr, nullptr,
                                   nullptr));
  TORCH_CHECK(ctx, "resize_frames: swscale cannot resize ", sw, "x", sh, " to ", width, "x",
              height);
  for (int64_t i = 0; i < x.size(0); ++i) {
    torch::Tensor src = x[i], dst = out[i];
    uint8_t *sp[4], *dp[4];
    int ss[4], ds[4];
    gbrp_planes(src, sp, ss);
    gbrp_planes(dst, dp, ds);
    int rows = sws_scale(ctx.get(), sp, ss, 0, sh, dp, ds);
    TORCH_CHECK(rows > 0, "resize_frames: swscale failed");
  }
  return single ? out[0] : out;
}

}  // namespace causvid::data
