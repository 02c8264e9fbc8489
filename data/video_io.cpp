// data/video_io.cpp: see video_io.h. libav* through RAII holders; every return code goes
// through check_av(); libav's own log lines are routed to LOG_DEBUG and the last error line
// is appended to the thrown message ("[libav: moov atom not found]").
#include "data/video_io.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

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

std::string take_last_av_error() {
  std::string s;
  s.swap(g_last_av_error);
  return s;
}

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
namespace {

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

int sws_colorspace_of(AVColorSpace cs) {
  switch (cs) {
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

// Decoded frame -> [3,oh,ow] uint8 through a cached swscale context.
class RgbConverter {
 public:
  torch::Tensor convert(const AVFrame* in, int ow, int oh, ResizeFilter filter, bool center_crop,
                        const std::string& path) {
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
    int cs = sws_colorspace_of(f->colorspace);
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

 private:
  SwsContextPtr sws_;
  SwsContext* last_ctx_ = nullptr;
  int last_cs_ = -1;
  bool last_range_ = false;
};

struct InputVideo {
  FormatInputPtr fmt;
  AVStream* st = nullptr;
  int stream = -1;
  const AVCodec* codec = nullptr;
  VideoInfo info;
};

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

}  // namespace

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

// ------------------------------------------------------------------ decoding
DecodedVideo decode_video(const std::string& path, const DecodeOptions& opts) {
  TORCH_CHECK(opts.width >= 0 && opts.height >= 0, path, ": output size ", opts.width, "x",
              opts.height, ", want >= 0 (0 keeps the source size)");
  TORCH_CHECK(opts.target_fps >= 0 && std::isfinite(opts.target_fps), path, ": target_fps ",
              opts.target_fps, ", want >= 0");
  TORCH_CHECK(opts.num_frames != 0, path, ": num_frames 0, want > 0 or -1 (all)");
  InputVideo in = open_input(path);
  CodecContextPtr dec = open_decoder(in, opts.threads, path);
  DecodedVideo out;
  out.info = in.info;
  const double src_fps = in.info.fps;
  const double tb = av_q2d(in.st->time_base);

  int ow = opts.width, oh = opts.height;
  auto fix_size = [&](int sw, int sh) {
    if (ow == 0 && oh == 0) {
      ow = sw;
      oh = sh;
    } else if (ow == 0) {
      ow = even_round(double(oh) * sw / sh);
    } else if (oh == 0) {
      oh = even_round(double(ow) * sh / sw);
    }
  };

  const bool resample = opts.target_fps > 0;
  out.fps = resample ? opts.target_fps : src_fps;
  std::unique_ptr<FrameResampler> rs;
  if (resample) rs = std::make_unique<FrameResampler>(opts.target_fps, opts.select);

  RgbConverter conv;
  std::vector<torch::Tensor> frames;
  auto want_more = [&] { return opts.num_frames < 0 || int64_t(frames.size()) < opts.num_frames; };
  // Emits `n` copies of source frame `src` (converted once).
  auto emit = [&](const AVFrame* f, int64_t n, int64_t src, double t_src) {
    torch::Tensor rgb;
    for (int64_t i = 0; i < n && want_more(); ++i) {
      if (!rgb.defined()) {
        fix_size(f->width, f->height);
        rgb = conv.convert(f, ow, oh, opts.filter, opts.center_crop, path);
      }
      double t = resample ? rs->output_time(int64_t(frames.size())) : t_src;
      frames.push_back(rgb);
      out.times_s.push_back(t);
      out.source_index.push_back(src);
    }
  };

  FramePtr frame = make_frame(), held = make_frame();
  PacketPtr pkt = make_packet();
  bool have_held = false, have_first = false;
  double t_first = 0, t_last = -1e300, held_t = 0, held_dur = 0;
  int64_t decoded = 0;

  auto on_frame = [&](AVFrame* f) {
    int64_t ts = f->best_effort_timestamp;
    double t;
    if (ts == AV_NOPTS_VALUE)
      t = have_first ? t_last + (src_fps > 0 ? 1.0 / src_fps : 1.0 / 16) : 0.0;
    else
      t = ts * tb;
    if (!have_first) {
      have_first = true;
      t_first = t;
    }
    t -= t_first;
    if (t <= t_last) t = t_last + (src_fps > 0 ? 1.0 / src_fps : 1e-3);  // broken pts
    t_last = t;
    int64_t idx = decoded++;
    int64_t dur_ts = frame_duration_ts(f);
    double dur = dur_ts > 0 ? dur_ts * tb : (src_fps > 0 ? 1.0 / src_fps : 0.0);
    if (!resample) {
      emit(f, 1, idx, t);
      return;
    }
    int64_t n = rs->push(t);
    if (have_held) emit(held.get(), n, idx - 1, held_t);
    av_frame_unref(held.get());
    av_frame_move_ref(held.get(), f);
    have_held = true;
    held_t = t;
    held_dur = dur > 0 ? dur : 0.0;
  };

  auto receive_all = [&] {
    while (want_more()) {
      int rc = avcodec_receive_frame(dec.get(), frame.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check_av(rc, path, "decode frame " + std::to_string(decoded));
      on_frame(frame.get());
      av_frame_unref(frame.get());
    }
  };

  bool eof = false;
  int64_t packets = 0;
  while (want_more()) {
    int rc = av_read_frame(in.fmt.get(), pkt.get());
    if (rc == AVERROR_EOF) {
      eof = true;
      break;
    }
    check_av(rc, path, "read packet " + std::to_string(packets));
    if (pkt->stream_index != in.stream) {
      av_packet_unref(pkt.get());
      continue;
    }
    ++packets;
    rc = avcodec_send_packet(dec.get(), pkt.get());
    av_packet_unref(pkt.get());
    if (rc == AVERROR(EAGAIN)) {
      receive_all();
      continue;
    }
    check_av(rc, path, "decode packet " + std::to_string(packets - 1));
    receive_all();
  }
  if (eof) {
    check_av(avcodec_send_packet(dec.get(), nullptr), path, "flush decoder");
    receive_all();
  }
  if (resample && have_held && want_more()) {
    if (held_dur <= 0) held_dur = src_fps > 0 ? 1.0 / src_fps : 1.0 / opts.target_fps;
    emit(held.get(), rs->finish(held_t + held_dur), decoded - 1, held_t);
  }
  out.num_decoded = decoded;

  TORCH_CHECK(decoded > 0, path,
              ": no decodable video frames (a zero-frame or corrupt video; "
              "the container declares ",
              in.info.num_frames, ")");
  if (eof && opts.strict && in.info.num_frames_exact && decoded < in.info.num_frames) {
    TORCH_CHECK(false, path, ": truncated or corrupt: decoded ", decoded, " of the ",
                in.info.num_frames, " frames the container declares");
  }
  if (opts.num_frames > 0 && !opts.allow_fewer) {
    TORCH_CHECK(int64_t(frames.size()) >= opts.num_frames, path, ": video too short: has ",
                frames.size(), " frames", resample ? " at the target fps " : "",
                resample ? std::to_string(opts.target_fps) : std::string(), ", want ",
                opts.num_frames, " (", decoded, " decoded at ", src_fps, " fps, ",
                in.info.duration_s, " s)");
  }
  TORCH_CHECK(!frames.empty(), path, ": no output frames (target_fps ", opts.target_fps, ")");
  out.frames = torch::stack(frames);
  return out;
}

torch::Tensor read_video(const std::string& path, const DecodeOptions& opts) {
  return decode_video(path, opts).frames;
}

torch::Tensor read_video_float(const std::string& path, const DecodeOptions& opts) {
  return uint8_to_float(decode_video(path, opts).frames);
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
  // Opens `name`; returns nullptr (and why) when it is missing or refuses the settings.
  auto try_open = [&](const std::string& name, std::string* why) -> CodecContextPtr {
    const AVCodec* codec = avcodec_find_encoder_by_name(name.c_str());
    if (!codec) {
      *why = "is not in this FFmpeg build";
      return nullptr;
    }
    CodecContextPtr c(avcodec_alloc_context3(codec));
    TORCH_CHECK(c, path_, ": avcodec_alloc_context3: out of memory");
    c->width = width_;
    c->height = height_;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = av_inv_q(fr);
    c->framerate = fr;
    c->thread_count = opts_.threads;
    c->color_range = AVCOL_RANGE_MPEG;
    c->colorspace = AVCOL_SPC_BT709;
    c->color_primaries = AVCOL_PRI_BT709;
    c->color_trc = AVCOL_TRC_BT709;
    if (fmt_->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary* d = nullptr;
    std::string cname = codec->name;
    if (cname == "libx264") {
      av_dict_set(&d, "crf", std::to_string(opts_.crf).c_str(), 0);
      av_dict_set(&d, "preset", opts_.preset.c_str(), 0);
      if (opts_.streaming) av_dict_set(&d, "tune", "zerolatency", 0);
    } else if (cname == "mpeg4") {
      c->flags |= AV_CODEC_FLAG_QSCALE;
      int q = std::clamp(int(std::lround(opts_.crf / 6.0)), 1, 31);
      c->global_quality = FF_QP2LAMBDA * q;
      c->max_b_frames = 0;
    }
    if (opts_.streaming) c->max_b_frames = 0;
    int rc = avcodec_open2(c.get(), codec, &d);
    av_dict_free(&d);
    if (rc < 0) {
      std::string detail = take_last_av_error();
      *why = "failed to open: " + av_error_string(rc) + (detail.empty() ? "" : " (" + detail + ")");
      return nullptr;
    }
    return c;
  };
  std::string why;
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
