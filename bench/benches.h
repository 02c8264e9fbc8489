// bench/benches.h: benchmark entry points reachable as `causvid bench NAME` (flags parsed in
// cli/bench_command.cpp). Each prints its measurements with ratios against a baseline
// measured in the same run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace causvid::bench {

struct DitBenchArgs {
  std::string preset = "wan-mid";
  std::optional<int64_t> layers;
  int64_t frames = 3;
  int64_t height = 30;
  int64_t width = 52;
  std::string mode = "bidirectional";
  int64_t num_frame_per_block = 3;
  std::string dtypes = "fp32,bf16";
  int reps = 3;
  bool backward = true;
  std::string profile;
  std::string device = "cpu";
  std::string attention = "sdpa,chunked";
  std::string reference;
  std::string python;
};
int bench_dit(const DitBenchArgs& a);

struct FsdpBenchArgs {
  std::string preset = "wan-mid";
  int64_t steps = 3;
  bool mixed_precision = false;
  int64_t rs_mb = 64;
  bool gather_all = false;
  std::string only = "all";
};
int bench_fsdp(const FsdpBenchArgs& a);

struct GenerateBenchArgs {
  std::string preset = "toy";
  int64_t size = 12;
  int reps = 3;
  int threads = 1;
  int64_t blocks = 20;
  int64_t num_frame_per_block = 3;
  int64_t window_frames = 6;
  int64_t sink_frames = 3;
  int64_t steps = 3;
  bool wan = false;
  int64_t wan_layers = 1;
  double h100_tflops = 989;
  double h100_mfu = 0.4;
  std::string device = "cpu";
  std::string dtype = "fp32";
  bool wan_stream = false;
};
int bench_generate(const GenerateBenchArgs& a);

struct T5BenchArgs {
  int64_t dim = 512;
  int64_t dim_ffn = 1280;
  int64_t heads = 8;
  int64_t layers = 4;
  int64_t text_len = 512;
  int64_t valid = 64;
  int64_t batch = 1;
  int iters = 3;
};
int bench_t5(const T5BenchArgs& a);

struct TrainBenchArgs {
  std::string preset = "toy";
  int64_t batch = 16;
  int64_t frames = 6;
  int64_t size = 16;
  int64_t steps = 6;
  std::string stages = "diffusion,ode,dmd";
  std::string device = "cpu";
  bool mixed_precision = false;
};
int bench_train(const TrainBenchArgs& a);

struct VideoBenchArgs {
  int64_t frames = 81;
  int width = 832;
  int height = 480;
  int reps = 3;
  int threads = 0;
  std::string dir;
};
int bench_video(const VideoBenchArgs& a);

struct VaeBenchArgs {
  std::string sizes = "128x128,240x416,480x832";
  std::string dtypes = "fp32,bf16";
  std::string ops = "encode,decode";
  int64_t enc_frames = 5;
  int64_t dec_latent = 2;
  std::string conv_size = "240x416";
  int reps = 2;
  std::string child;
  std::string child_dtype = "fp32";
  std::string child_size = "64x64";
  int64_t child_n = 1;
};
int bench_vae(const VaeBenchArgs& a);

}  // namespace causvid::bench
