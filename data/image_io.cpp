// data/image_io.cpp: see image_io.h. PNG encode with libavcodec ("png", rgb24); image read
// reuses decode_video() (libavformat's image demuxers + the matching decoder).
#include "data/image_io.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
}

#include <cmath>

#include "core/fs.h"
#include "data/video_io.h"

namespace causvid::data {

std::string encode_png(const torch::Tensor& image) {
  init_av_logging();
  TORCH_CHECK(image.defined() && (image.dim() == 3 || (image.dim() == 4 && image.size(0) == 1)),
              "encode_png: image shape ", image.defined() ? image.sizes() : c10::IntArrayRef{},
              ", want [3,H,W] or [1,3,H,W]");
  torch::Tensor x = frames_to_uint8(image.dim() == 4 ? image[0] : image, "encode_png")[0];
  const int h = int(x.size(1)), w = int(x.size(2));
  torch::Tensor hwc = x.permute({1, 2, 0}).contiguous();  // packed rgb24

  const AVCodec* codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
  TORCH_CHECK(codec, "encode_png: this FFmpeg build has no PNG encoder");
  CodecContextPtr enc(avcodec_alloc_context3(codec));
  TORCH_CHECK(enc, "encode_png: out of memory");
  enc->width = w;
  enc->height = h;
  enc->pix_fmt = AV_PIX_FMT_RGB24;
  enc->time_base = AVRational{1, 1};
  check_av(avcodec_open2(enc.get(), codec, nullptr), "encode_png", "open png encoder");

  FramePtr frame(av_frame_alloc());
  TORCH_CHECK(frame, "encode_png: out of memory");
  frame->format = AV_PIX_FMT_RGB24;
  frame->width = w;
  frame->height = h;
  check_av(av_frame_get_buffer(frame.get(), 0), "encode_png", "allocate frame");
  av_image_copy_plane(frame->data[0], frame->linesize[0], hwc.data_ptr<uint8_t>(), w * 3, w * 3, h);
  frame->pts = 0;
  check_av(avcodec_send_frame(enc.get(), frame.get()), "encode_png", "encode");
  check_av(avcodec_send_frame(enc.get(), nullptr), "encode_png", "flush");
  PacketPtr pkt(av_packet_alloc());
  TORCH_CHECK(pkt, "encode_png: out of memory");
  std::string bytes;
  while (true) {
    int rc = avcodec_receive_packet(enc.get(), pkt.get());
    if (rc == AVERROR_EOF || rc == AVERROR(EAGAIN)) break;
    check_av(rc, "encode_png", "receive packet");
    bytes.append(reinterpret_cast<const char*>(pkt->data), size_t(pkt->size));
    av_packet_unref(pkt.get());
  }
  TORCH_CHECK(!bytes.empty(), "encode_png: the encoder produced no data");
  return bytes;
}

void write_png(const std::string& path, const torch::Tensor& image) {
  std::string bytes;
  try {
    bytes = encode_png(image);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, path, ": ", e.what_without_backtrace());
  }
  core::write_file_atomic(path, bytes);
}

torch::Tensor read_image(const std::string& path) {
  DecodeOptions o;
  o.num_frames = 1;
  o.strict = false;
  return decode_video(path, o).frames[0];
}

torch::Tensor read_image_float(const std::string& path) { return uint8_to_float(read_image(path)); }

torch::Tensor make_grid(const torch::Tensor& frames, const GridOptions& opts) {
  TORCH_CHECK(opts.padding >= 0, "make_grid: padding ", opts.padding, ", want >= 0");
  TORCH_CHECK(opts.num_cols >= 0, "make_grid: num_cols ", opts.num_cols, ", want >= 0");
  torch::Tensor x = frames_to_uint8(frames, "make_grid");  // [F,3,H,W]
  const int64_t n = x.size(0), h = x.size(2), w = x.size(3), p = opts.padding;
  int64_t cols = opts.num_cols > 0 ? opts.num_cols : int64_t(std::ceil(std::sqrt(double(n))));
  cols = std::min<int64_t>(cols, n);
  const int64_t rows = (n + cols - 1) / cols;
  torch::Tensor grid = torch::full({3, rows * (h + p) + p, cols * (w + p) + p},
                                   int64_t(opts.pad_value), torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    int64_t r = i / cols, c = i % cols;
    grid.narrow(1, p + r * (h + p), h).narrow(2, p + c * (w + p), w).copy_(x[i]);
  }
  return grid;
}

void write_contact_sheet(const std::string& path, const torch::Tensor& frames,
                         const GridOptions& opts, int max_frames) {
  torch::Tensor x = frames_to_uint8(frames, path);
  if (max_frames > 0 && x.size(0) > max_frames) {
    // Evenly spaced in time, first and last frame included.
    torch::Tensor idx = torch::linspace(0, double(x.size(0) - 1), max_frames, torch::kFloat64)
                            .round()
                            .to(torch::kLong);
    x = x.index_select(0, idx);
  }
  write_png(path, make_grid(x, opts));
}

}  // namespace causvid::data
