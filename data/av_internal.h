// data/av_internal.h: libav helpers shared by data/video_io.cpp (errors, conversion, probing),
// data/video_decode.cpp (decode_video) and data/video_writer.cpp (VideoWriter). Not a public
// header: it pulls in libav's C headers.
#pragma once

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <string>

#include "data/video_io.h"

namespace causvid::data::detail {

// The last libav error line logged on this thread (cleared on read), for messages.
std::string take_last_av_error();

FramePtr make_frame();
PacketPtr make_packet();

// Plane pointers of a [3,H,W] uint8 tensor in GBRP order (swscale's planar RGB).
void gbrp_planes(torch::Tensor& chw, uint8_t* data[4], int linesize[4]);

// Decoded frame -> [3,oh,ow] uint8 through a cached swscale context.
class RgbConverter {
 public:
  torch::Tensor convert(const AVFrame* in, int ow, int oh, ResizeFilter filter, bool center_crop,
                        const std::string& path);

 private:
  SwsContextPtr sws_;
  SwsContext* last_ctx_ = nullptr;
  int last_cs_ = -1;
  bool last_range_ = false;
};

// An opened input file and its best video stream.
struct InputVideo {
  FormatInputPtr fmt;
  AVStream* st = nullptr;
  int stream = -1;
  const AVCodec* codec = nullptr;
  VideoInfo info;
};

InputVideo open_input(const std::string& path);
CodecContextPtr open_decoder(const InputVideo& in, int threads, const std::string& path);

// v rounded to an even number >= 2 (yuv420p sizes).
int even_round(double v);
// The frame's duration in its stream's time base (0 if unknown).
int64_t frame_duration_ts(const AVFrame* f);

}  // namespace causvid::data::detail
