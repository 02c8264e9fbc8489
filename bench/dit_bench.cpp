// bench/dit_bench.cpp: `causvid bench dit`: forward and forward+backward time of the Wan
// DiT, tokens/s, achieved GFLOP/s (matmul FLOPs of the model) and the ratio to a GEMM roof
// measured in the same run (a 2048^3 matmul), in fp32 and bf16.
#include <torch/csrc/autograd/profiler_legacy.h>

#include <cstdio>

#include "bench/bench_util.h"
#include "bench/benches.h"
#include "core/args.h"
#include "models/wan/wan_model.h"

namespace causvid::bench {

namespace {

// Matmul FLOPs of one forward (attention over `keys_per_query` keys on average).
double dit_forward_flops(const models::WanConfig& c, int64_t L, double mean_keys, int64_t Fm) {
  const double D = c.dim, T = c.text_len;
  double f = 2.0 * L * (c.in_dim * c.patch_volume()) * D;      // patch embedding
  f += 2.0 * T * c.text_dim * D + 2.0 * T * D * D;              // text embedding
  f += 2.0 * Fm * (c.freq_dim * D + D * D + 6 * D * D);         // time embedding/projection
  double blk = 2.0 * L * D * 3 * D + 2.0 * L * D * D;           // qkv, o
  blk += 4.0 * L * mean_keys * D;                               // self-attention
  blk += 4.0 * L * D * D + 4.0 * T * D * D + 4.0 * L * T * D;   // cross-attention
  blk += 4.0 * L * D * c.ffn_dim;                               // ffn
  f += c.num_layers * blk;
  f += 2.0 * L * D * (c.patch_volume() * c.out_dim);            // head
  return f;
}

}  // namespace

int bench_dit(int argc, char** argv) {
  core::ArgParser p("causvid bench dit",
                    "Time the Wan DiT forward and forward+backward (random weights) and report "
                    "achieved GFLOP/s against a GEMM roof measured in the same run.");
  auto& preset = p.flag("--preset", "wan-mid", "model preset (wan-1.3b, wan-14b, wan-mid, tiny, toy)");
  auto& layers = p.flag("--layers", "", "override num_layers (e.g. 1 for one wan-1.3b block)");
  auto& frames = p.flag("--frames", "3", "latent frames");
  auto& height = p.flag("--height", "30", "latent height");
  auto& width = p.flag("--width", "52", "latent width");
  auto& mode = p.flag("--mode", "bidirectional", "bidirectional | causal (block-causal training mask)");
  auto& nfpb = p.flag("--num-frame-per-block", "3", "frames per block for --mode causal");
  auto& dtypes = p.flag("--dtypes", "fp32,bf16", "comma-separated: fp32, bf16");
  auto& reps = p.flag("--reps", "3", "timed repetitions (median)");
  auto& backward = p.flag("--backward", "1", "also time forward+backward (0/1)");
  auto& profile = p.flag("--profile", "", "write a chrome://tracing profile of one fp32 forward to this file");
  if (!p.parse(argc, argv)) return p.exit_code();

  auto cfg = models::WanConfig::preset(preset);
  if (!layers.empty()) cfg.num_layers = core::ArgParser::to_int("--layers", layers);
  const int64_t F = core::ArgParser::to_int("--frames", frames);
  const int64_t H = core::ArgParser::to_int("--height", height);
  const int64_t W = core::ArgParser::to_int("--width", width);
  const int64_t nb = core::ArgParser::to_int("--num-frame-per-block", nfpb);
  const int R = core::ArgParser::to_int("--reps", reps);
  const bool causal = mode == "causal";
  TORCH_CHECK(causal || mode == "bidirectional", "--mode: got '", mode,
              "', want bidirectional or causal");
  TORCH_CHECK(F > 0 && H > 0 && W > 0 && H % 2 == 0 && W % 2 == 0,
              "--frames/--height/--width: want positive sizes with even height and width");
  TORCH_CHECK(!causal || F % nb == 0, "--frames ", F, " not divisible by --num-frame-per-block ", nb);
  cfg.validate();
  const int64_t fs = (H / 2) * (W / 2), L = F * fs;
  double mean_keys = L;
  if (causal) {  // block i attends (i+1) blocks
    const int64_t nblk = F / nb;
    mean_keys = double(fs * nb) * (nblk + 1) / 2.0;
  }
  const double flops = dit_forward_flops(cfg, L, mean_keys, causal ? F : 1);
  std::printf("DiT bench: preset %s, %lld layers, dim %lld, heads %lld, ffn %lld, %lld frames of "
              "%lldx%lld latents = %lld tokens, %s attention, %d threads\n",
              preset.c_str(), (long long)cfg.num_layers, (long long)cfg.dim,
              (long long)cfg.num_heads, (long long)cfg.ffn_dim, (long long)F, (long long)H,
              (long long)W, (long long)L, mode.c_str(), at::get_num_threads());
  std::printf("forward matmul FLOPs: %.2f GFLOP (fwd+bwd counted as 3x)\n", flops / 1e9);
  std::printf("%-5s %10s %10s %12s %10s %10s %10s %8s\n", "dtype", "roof GF/s", "pass",
              "time s", "tokens/s", "GFLOP/s", "of roof", "");
  for (const auto& dt_name : {std::string("fp32"), std::string("bf16")}) {
    if (dtypes.find(dt_name) == std::string::npos) continue;
    auto dt = dt_name == "fp32" ? torch::kFloat32 : torch::kBFloat16;
    const double roof = gemm_roof_gflops(dt);
    models::WanModel m(cfg);
    m->init_weights(0);
    m->to(dt);
    torch::manual_seed(0);
    auto x = torch::randn({1, cfg.in_dim, F, H, W}).to(dt);
    auto ctx = torch::randn({1, cfg.text_len, cfg.text_dim}).to(dt);
    auto t_b = torch::full({1}, 500.0f);
    auto t_bf = torch::full({1, F}, 500.0f);
    auto fwd = [&] {
      return causal ? m->forward_causal(x, t_bf, ctx, nb) : m->forward(x, t_b, ctx);
    };
    if (!profile.empty() && dt == torch::kFloat32) {
      torch::NoGradGuard ng;
      fwd();
      torch::autograd::profiler::RecordProfile guard(profile);
      fwd();
    }
    double tf = time_median([&] {
      torch::NoGradGuard ng;
      fwd();
    }, R, 1);
    std::printf("%-5s %10.1f %10s %12.3f %10.0f %10.1f %9.1f%%\n", dt_name.c_str(), roof,
                "forward", tf, L / tf, flops / tf / 1e9, 100.0 * flops / tf / 1e9 / roof);
    if (backward == "1") {
      double tb = time_median([&] {
        m->zero_grad();
        fwd().pow(2).mean().backward();
      }, R, 1);
      std::printf("%-5s %10.1f %10s %12.3f %10.0f %10.1f %9.1f%%\n", dt_name.c_str(), roof,
                  "fwd+bwd", tb, L / tb, 3 * flops / tb / 1e9,
                  100.0 * 3 * flops / tb / 1e9 / roof);
    }
  }
  return 0;
}

}  // namespace causvid::bench
