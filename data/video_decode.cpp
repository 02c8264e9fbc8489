// data/video_decode.cpp: decode_video / read_video (video_io.h). The demux + decode loop feeds
// each decoded frame to on_frame(), which converts it to RGB and emits it (at the source
// rate, or resampled to target_fps by FrameResampler). Split from video_io.cpp.
#include <cmath>
#include <memory>

#include "data/av_internal.h"

namespace causvid::data {
namespace {

using namespace detail;  // NOLINT: av_internal.h's helpers

// decode_video's state; run() once.
class Decoder {
 public:
  Decoder(const std::string& path, const DecodeOptions& opts)
      : path_(path), opts_(opts), in_(open_input(path)), dec_(open_decoder(in_, opts.threads, path)) {
    out_.info = in_.info;
    src_fps_ = in_.info.fps;
    tb_ = av_q2d(in_.st->time_base);
    ow_ = opts.width;
    oh_ = opts.height;
    resample_ = opts.target_fps > 0;
    out_.fps = resample_ ? opts.target_fps : src_fps_;
    if (resample_) rs_ = std::make_unique<FrameResampler>(opts.target_fps, opts.select);
  }

  DecodedVideo run() {
    const bool eof = read_packets();
    if (eof) {
      check_av(avcodec_send_packet(dec_.get(), nullptr), path_, "flush decoder");
      receive_all();
    }
    if (resample_ && have_held_ && want_more()) {
      if (held_dur_ <= 0) held_dur_ = src_fps_ > 0 ? 1.0 / src_fps_ : 1.0 / opts_.target_fps;
      emit(held_.get(), rs_->finish(held_t_ + held_dur_), decoded_ - 1, held_t_);
    }
    out_.num_decoded = decoded_;
    check_result(eof);
    out_.frames = torch::stack(frames_);
    return std::move(out_);
  }

 private:
  bool want_more() const {
    return opts_.num_frames < 0 || int64_t(frames_.size()) < opts_.num_frames;
  }

  void fix_size(int sw, int sh) {
    if (ow_ == 0 && oh_ == 0) {
      ow_ = sw;
      oh_ = sh;
    } else if (ow_ == 0) {
      ow_ = even_round(double(oh_) * sw / sh);
    } else if (oh_ == 0) {
      oh_ = even_round(double(ow_) * sh / sw);
    }
  }

  // Emits `n` copies of source frame `src` (converted once).
  void emit(const AVFrame* f, int64_t n, int64_t src, double t_src) {
    torch::Tensor rgb;
    for (int64_t i = 0; i < n && want_more(); ++i) {
      if (!rgb.defined()) {
        fix_size(f->width, f->height);
        rgb = conv_.convert(f, ow_, oh_, opts_.filter, opts_.center_crop, path_);
      }
      double t = resample_ ? rs_->output_time(int64_t(frames_.size())) : t_src;
      frames_.push_back(rgb);
      out_.times_s.push_back(t);
      out_.source_index.push_back(src);
    }
  }

  void on_frame(AVFrame* f) {
    int64_t ts = f->best_effort_timestamp;
    double t;
    if (ts == AV_NOPTS_VALUE)
      t = have_first_ ? t_last_ + (src_fps_ > 0 ? 1.0 / src_fps_ : 1.0 / 16) : 0.0;
    else
      t = ts * tb_;
    if (!have_first_) {
      have_first_ = true;
      t_first_ = t;
    }
    t -= t_first_;
    if (t <= t_last_) t = t_last_ + (src_fps_ > 0 ? 1.0 / src_fps_ : 1e-3);  // broken pts
    t_last_ = t;
    int64_t idx = decoded_++;
    int64_t dur_ts = frame_duration_ts(f);
    double dur = dur_ts > 0 ? dur_ts * tb_ : (src_fps_ > 0 ? 1.0 / src_fps_ : 0.0);
    if (!resample_) {
      emit(f, 1, idx, t);
      return;
    }
    int64_t n = rs_->push(t);
    if (have_held_) emit(held_.get(), n, idx - 1, held_t_);
    av_frame_unref(held_.get());
    av_frame_move_ref(held_.get(), f);
    have_held_ = true;
    held_t_ = t;
    held_dur_ = dur > 0 ? dur : 0.0;
  }

  void receive_all() {
    while (want_more()) {
      int rc = avcodec_receive_frame(dec_.get(), frame_.get());
      if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return;
      check_av(rc, path_, "decode frame " + std::to_string(decoded_));
      on_frame(frame_.get());
      av_frame_unref(frame_.get());
    }
  }

  // Demuxes and decodes until enough frames or the end of the file; true at the end.
  bool read_packets() {
    int64_t packets = 0;
    while (want_more()) {
      int rc = av_read_frame(in_.fmt.get(), pkt_.get());
      if (rc == AVERROR_EOF) return true;
      check_av(rc, path_, "read packet " + std::to_string(packets));
      if (pkt_->stream_index != in_.stream) {
        av_packet_unref(pkt_.get());
        continue;
      }
      ++packets;
      rc = avcodec_send_packet(dec_.get(), pkt_.get());
      av_packet_unref(pkt_.get());
      if (rc == AVERROR(EAGAIN)) {
        receive_all();
        continue;
      }
      check_av(rc, path_, "decode packet " + std::to_string(packets - 1));
      receive_all();
    }
    return false;
  }

  void check_result(bool eof) const {
    TORCH_CHECK(decoded_ > 0, path_,
                ": no decodable video frames (a zero-frame or corrupt video; "
                "the container declares ",
                in_.info.num_frames, ")");
    if (eof && opts_.strict && in_.info.num_frames_exact && decoded_ < in_.info.num_frames) {
      TORCH_CHECK(false, path_, ": truncated or corrupt: decoded ", decoded_, " of the ",
                  in_.info.num_frames, " frames the container declares");
    }
    if (opts_.num_frames > 0 && !opts_.allow_fewer) {
      TORCH_CHECK(int64_t(frames_.size()) >= opts_.num_frames, path_, ": video too short: has ",
                  frames_.size(), " frames", resample_ ? " at the target fps " : "",
                  resample_ ? std::to_string(opts_.target_fps) : std::string(), ", want ",
                  opts_.num_frames, " (", decoded_, " decoded at ", src_fps_, " fps, ",
                  in_.info.duration_s, " s)");
    }
    TORCH_CHECK(!frames_.empty(), path_, ": no output frames (target_fps ", opts_.target_fps,
                ")");
  }

  const std::string& path_;
  const DecodeOptions& opts_;
  InputVideo in_;
  CodecContextPtr dec_;
  DecodedVideo out_;
  double src_fps_ = 0, tb_ = 0;
  int ow_ = 0, oh_ = 0;
  bool resample_ = false;
  std::unique_ptr<FrameResampler> rs_;
  RgbConverter conv_;
  std::vector<torch::Tensor> frames_;
  FramePtr frame_ = make_frame(), held_ = make_frame();
  PacketPtr pkt_ = make_packet();
  bool have_held_ = false, have_first_ = false;
  double t_first_ = 0, t_last_ = -1e300, held_t_ = 0, held_dur_ = 0;
  int64_t decoded_ = 0;
};

}  // namespace

DecodedVideo decode_video(const std::string& path, const DecodeOptions& opts) {
  TORCH_CHECK(opts.width >= 0 && opts.height >= 0, path, ": output size ", opts.width, "x",
              opts.height, ", want >= 0 (0 keeps the source size)");
  TORCH_CHECK(opts.target_fps >= 0 && std::isfinite(opts.target_fps), path, ": target_fps ",
              opts.target_fps, ", want >= 0");
  TORCH_CHECK(opts.num_frames != 0, path, ": num_frames 0, want > 0 or -1 (all)");
  return Decoder(path, opts).run();
}

torch::Tensor read_video(const std::string& path, const DecodeOptions& opts) {
  return decode_video(path, opts).frames;
}

torch::Tensor read_video_float(const std::string& path, const DecodeOptions& opts) {
  return uint8_to_float(decode_video(path, opts).frames);
}

}  // namespace causvid::data

