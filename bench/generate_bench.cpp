// bench/generate_bench.cpp: `causvid bench generate`: streaming generation cost of the
// causal student (inference/causal_pipeline.h, the KV-cache sampler of CausVid's
// causal_inference.py).
//   1. toy size (default): time to first frame, per-block latency for blocks 1..N with the
//      full KV cache and with the rolling cache (window + sink), ratios block_i / block_1
//      (the rolling cache should stay flat), KV-cache memory, latent and video frames/s.
//   2. --wan: one block of Wan2.1-1.3B at the real token count (3 latent frames of 60x104 =
//      4680 tokens, 30x52 patches per frame) with --wan-layers of the 30 layers (scaled to
//      30 in the report), measured FLOP rate vs this machine's GEMM roof, and the projected
//      FPS of the 1.3B student on one H100 with the assumptions printed.
// Random weights: the cost does not depend on the values.
#include <cstdio>

#include "bench/bench_util.h"
#include "bench/benches.h"
#include "core/random.h"
#include "core/runtime.h"
#include "inference/causal_pipeline.h"
#include "inference/generate.h"
#include "models/wan/wan_config.h"

namespace causvid::bench {

namespace {

struct RunTimes {
  std::vector<double> block_s;
  double first_frame_s = 0;
  int64_t kv_bytes = 0;
};

// Generates `blocks` blocks autoregressively; per-block wall time (denoise + cache write +
// latent preview decode), time to first frame from a cold reset.
RunTimes run_blocks(models::WanDiffusionWrapper& w, const inference::CausalSamplerOptions& so,
                    int64_t blocks, int64_t C, int64_t h, int64_t ww, const torch::Tensor& ctx) {
  c10::InferenceMode im;
  const auto& mc = w.model()->config();
  const int64_t nfpb = so.num_frame_per_block;
  const int64_t fs = (h / mc.patch_size[1]) * (ww / mc.patch_size[2]);
  auto gen = at::detail::createCPUGenerator(0);
  auto noise = core::randn({1, blocks * nfpb, C, h, ww}, gen, ctx.options());
  RunTimes r;
  const double t0 = inference::now_s();
  inference::CausalPipeline pipe(w, so);
  pipe.set_context(ctx);
  pipe.reset(1, fs, blocks * nfpb);
  for (int64_t b = 0; b < blocks; ++b) {
    const double tb = inference::now_s();
    auto blk = pipe.step_block(noise.slice(1, b * nfpb, (b + 1) * nfpb), b, gen);
    auto px = inference::latent_preview(blk[0], 1);
    const double te = inference::now_s();
    if (b == 0) r.first_frame_s = te - t0;
    r.block_s.push_back(te - tb);
  }
  r.kv_bytes = pipe.cache()->bytes();
  return r;
}

// Matmul FLOPs of one forward of `Lq` tokens attending to `Lk` cached keys, all layers.
double forward_flops(const models::WanConfig& c, double Lq, double Lk, double text_len) {
  const double D = c.dim, Fd = c.ffn_dim;
  const double linear = 2.0 * Lq * (4 * D * D + 2 * D * D + 2 * D * Fd);  // self qkvo, cross q o, ffn
  const double attn = 4.0 * Lq * Lk * D + 4.0 * Lq * text_len * D;      // QK^T + PV, self + cross
  return c.num_layers * (linear + attn);
}

// Per-block and first-frame medians over `reps` runs of run_blocks.
RunTimes median_run(models::WanDiffusionWrapper& w, const inference::CausalSamplerOptions& o,
                    int reps, int64_t blocks, int64_t C, int64_t S, const torch::Tensor& ctx) {
  std::vector<RunTimes> runs;
  for (int i = 0; i < reps; ++i) runs.push_back(run_blocks(w, o, blocks, C, S, S, ctx));
  RunTimes m = runs[0];
  auto med = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  for (int64_t b = 0; b < blocks; ++b) {
    std::vector<double> v;
    for (auto& r : runs) v.push_back(r.block_s[b]);
    m.block_s[b] = med(v);
  }
  std::vector<double> f;
  for (auto& r : runs) f.push_back(r.first_frame_s);
  m.first_frame_s = med(f);
  return m;
}

// The streaming table: per-block latency, full vs rolling cache, and the summary lines.
void report_streaming(const RunTimes& full, const RunTimes& roll, int64_t blocks, int64_t nfpb,
                      int64_t W, int64_t K) {
  std::printf("%6s %12s %12s %14s %14s %12s\n", "block", "full ms", "rolling ms", "full/full[1]",
              "roll/roll[1]", "roll/full");
  for (int64_t b = 0; b < blocks; ++b) {
    std::printf("%6lld %12.2f %12.2f %14.3f %14.3f %12.3f\n", (long long)(b + 1),
                full.block_s[b] * 1e3, roll.block_s[b] * 1e3, full.block_s[b] / full.block_s[0],
                roll.block_s[b] / roll.block_s[0], roll.block_s[b] / full.block_s[b]);
  }
  auto mean_tail = [&](const std::vector<double>& v) {  // blocks past the window fill
    const int64_t from = std::min<int64_t>(blocks - 1, (W + K) / nfpb + 1);
    double s = 0;
    for (int64_t b = from; b < blocks; ++b) s += v[b];
    return s / (blocks - from);
  };
  const double rt = mean_tail(roll.block_s);
  double rmin = 1e30, rmax = 0;
  for (int64_t b = std::min<int64_t>(blocks - 1, (W + K) / nfpb + 1); b < blocks; ++b) {
    rmin = std::min(rmin, roll.block_s[b]);
    rmax = std::max(rmax, roll.block_s[b]);
  }
  std::printf("block %lld / block 1: full %.3f, rolling %.3f; rolling after the window fills: "
              "mean %.2f ms, min %+.1f%% max %+.1f%% of the mean (target within +-10%%)\n",
              (long long)blocks, full.block_s.back() / full.block_s[0],
              roll.block_s.back() / roll.block_s[0], rt * 1e3, (rmin / rt - 1) * 100,
              (rmax / rt - 1) * 100);
  std::printf("time to first frame: full %.2f ms, rolling %.2f ms (cache alloc + block 1)\n",
              full.first_frame_s * 1e3, roll.first_frame_s * 1e3);
  std::printf("KV cache: full %.2f MiB (%lld frames), rolling %.2f MiB (%lld frames): %.2fx\n",
              full.kv_bytes / 1048576.0, (long long)(blocks * nfpb), roll.kv_bytes / 1048576.0,
              (long long)(W + K), double(full.kv_bytes) / roll.kv_bytes);
  double tf = 0, tr = 0;
  for (int64_t b = 0; b < blocks; ++b) tf += full.block_s[b], tr += roll.block_s[b];
  std::printf("throughput: full %.1f latent frames/s (%.1f video FPS at 4 frames/latent), rolling "
              "%.1f latent frames/s (%.1f video FPS)\n\n",
              blocks * nfpb / tf, 4 * blocks * nfpb / tf, blocks * nfpb / tr,
              4 * blocks * nfpb / tr);
}

// One block of Wan2.1-1.3B (`layers` of its layers) at the real token count; returns the
// measured fraction of the GEMM roof.
double time_wan_block(const models::WanConfig& big, int64_t layers, torch::Device dev,
                      torch::ScalarType dtype, double roof, int64_t Lf, int64_t text_len) {
    auto c1 = big;
  c1.num_layers = layers;
  models::WanModel m(c1);
  m->to(dev, dtype);
  m->eval();
  models::WanDiffusionWrapper wb(m, true, 3);
  c10::InferenceMode im;
  auto x = torch::randn({1, 3, 16, 60, 104}).to(dev);
  auto t = torch::full({1, 3}, 1000.0f, torch::TensorOptions().device(dev));
  auto c = torch::randn({1, text_len, 4096}).to(dev);
  const double tsec = time_median(
      [&] {
        models::KvCache cache(m->kv_cache_options(1, Lf, 3));
        models::CrossAttnCache xc;
        wb.forward_cached(x, t, c, cache, xc, 0);
        sync(dev);
      },
      dev.is_cuda() ? 3 : 1, dev.is_cuda() ? 1 : 0);
  const double fl = forward_flops(c1, 3.0 * Lf, 3.0 * Lf, text_len);
  const double rate = fl / tsec;
  const double eff = rate / (roof * 1e9);
  std::printf("wan-1.3b block 1 (4680 tokens, %lld of 30 layers, %s on %s, 1 forward): %.4f s, "
              "%.1f GFLOP/s = %.0f%% of the GEMM roof; all 30 layers: %.4f s per forward\n",
              (long long)layers, core::dtype_name(dtype).c_str(), dev.str().c_str(), tsec,
              rate / 1e9, eff * 100, tsec * 30 / layers);
  return eff;
}

void stream_wan(const models::WanConfig& big, const inference::CausalSamplerOptions& so,
                torch::Device dev, torch::ScalarType dtype, double roof, int64_t steps,
                double video_flops, double frames, int64_t nblk, int64_t text_len) {
  // The whole 1.3B student streaming one 81-frame video: 7 blocks of 3 latent frames of
  // 60x104, `steps` denoising forwards + the cache write per block, plain KV cache.
  models::WanModel m(big);
  m->init_weights(0);
  m->to(dev, dtype);
  m->eval();
  models::WanDiffusionWrapper wb(m, true, 3);
  auto c = torch::randn({1, text_len, 4096}).to(dev);
  run_blocks(wb, so, 1, big.in_dim, 60, 104, c);  // warm-up (kernels, allocator)
  auto r = run_blocks(wb, so, nblk, big.in_dim, 60, 104, c);
  double total = 0;
  std::printf("wan-1.3b streaming (%s on %s, %lld steps + cache write):", core::dtype_name(dtype).c_str(),
              dev.str().c_str(), (long long)steps);
  for (double b : r.block_s) {
    std::printf(" %.1f", b * 1e3);
    total += b;
  }
  std::printf(" ms per block\n");
  std::printf("wan-1.3b streaming: first block %.1f ms, %.2f s for 81 frames = %.1f FPS "
              "(DiT + latent preview, no VAE decode), %.1f%% of the measured roof, KV cache "
              "%.2f GiB\n",
              r.first_frame_s * 1e3, total, frames / total,
              100.0 * video_flops / total / (roof * 1e9), r.kv_bytes / 1073741824.0);
}

// FLOPs of one 81-frame video of the 1.3B student (nblk blocks of 3 latent frames, `fwd`
// forwards each, plain cache as CausVid), printed with its KV cache size.
double wan_video_flops(const models::WanConfig& big, int64_t fwd, int64_t Lf, int64_t text_len,
                       int64_t nblk, int64_t W, int64_t K) {
  const double frames = 81;
  double video_flops = 0;  // 21 latent frames = 7 blocks, plain cache as CausVid
  for (int64_t b = 0; b < nblk; ++b)
    video_flops += fwd * forward_flops(big, 3.0 * Lf, (b + 1) * 3.0 * Lf, text_len);
  std::printf("wan-1.3b: %.2f TFLOP per 81-frame video (7 blocks x %lld forwards, 4680 tokens "
              "per block, plain cache), %.3f TFLOP per video frame (DiT only)\n",
              video_flops / 1e12, (long long)fwd, video_flops / frames / 1e12);
  const double kv_frame = 2.0 * big.num_layers * Lf * big.dim * 2;  // k+v, bf16
  std::printf("wan-1.3b KV cache (bf16): %.0f MiB per latent frame; 21 frames %.2f GiB; rolling "
              "window %lld + sink %lld: %.2f GiB\n",
              kv_frame / 1048576.0, 21 * kv_frame / 1073741824.0, (long long)W, (long long)K,
              (W + K) * kv_frame / 1073741824.0);
  return video_flops;
}

// The projected H100 FPS of the 1.3B student and its assumptions.
void report_projection(double frames, double video_flops, double h100, double mfu, double eff,
                       int64_t fwd) {
  auto project = [&](double frac) { return frames / (video_flops / (h100 * frac)); };
  std::printf("projected H100 FPS of the 1.3B causal student (DiT only, bf16, %lld forwards per "
              "block, peak %.0f TFLOP/s):\n",
              (long long)fwd, h100 / 1e12);
  std::printf("  at %.0f%% MFU: %.1f FPS (paper: 9.4 FPS incl. VAE decode)\n", mfu * 100,
              project(mfu));
  if (eff > 0)
    std::printf("  at this machine's measured fraction of its roof (%.0f%%): %.1f FPS\n",
                eff * 100, project(eff));
  std::printf("assumptions: matmul FLOPs only (2 per MAC: q/k/v/o, cross q/o, FFN, self and "
              "cross attention over the cached keys); cross-attention K/V computed once per "
              "prompt; no VAE decode, text encoder or host overhead; fraction of peak constant "
              "over block positions.\n");
}

// The streaming part: `preset` at S x S latents, full vs rolling (W + K) cache, `threads`
// intra-op threads (0 = keep), medians over `reps` runs.
void stream_toy(const std::string& preset, torch::Device dev, torch::ScalarType dtype,
                const inference::CausalSamplerOptions& so, int64_t S, int64_t blocks, int64_t W,
                int64_t K, int threads, int reps) {
  const int64_t nfpb = so.num_frame_per_block;
  const int64_t steps = static_cast<int64_t>(so.denoising_step_list.size());
  auto cfg = models::WanConfig::preset(preset);
  models::WanModel net(cfg);
  net->init_weights(0);
  net->to(dev, dtype);
  net->eval();
  models::WanDiffusionWrapper w(net, /*causal=*/true, nfpb);
  auto ctx = torch::randn({1, cfg.text_len, cfg.text_dim}).to(dev);
  const int saved_threads = at::get_num_threads();
  if (threads > 0) at::set_num_threads(threads);
  auto so_r = so;
  so_r.window_frames = W;
  so_r.sink_frames = K;
  run_blocks(w, so, 2, cfg.in_dim, S, S, ctx);  // warm-up
  auto full = median_run(w, so, reps, blocks, cfg.in_dim, S, ctx);
  auto roll = median_run(w, so_r, reps, blocks, cfg.in_dim, S, ctx);
  at::set_num_threads(saved_threads);
  const int64_t tokens = (S / cfg.patch_size[1]) * (S / cfg.patch_size[2]);
  std::printf("streaming: preset %s (dim %lld, %lld layers), %lld latent frames of %lldx%lld "
              "(%lld tokens/frame), %lld frames/block, %lld steps + cache write\n",
              preset.c_str(), (long long)cfg.dim, (long long)cfg.num_layers,
              (long long)(blocks * nfpb), (long long)S, (long long)S, (long long)tokens,
              (long long)nfpb, (long long)steps);
  std::printf("rolling cache: window %lld + sink %lld latent frames; per-block median of %d runs, "
              "%d thread(s)\n",
              (long long)W, (long long)K, reps, threads > 0 ? threads : saved_threads);
  report_streaming(full, roll, blocks, nfpb, W, K);
}

}  // namespace

int bench_generate(const GenerateBenchArgs& a) {
  const auto dev = core::resolve_device(a.device);
  const auto dtype = core::parse_dtype(a.dtype, "--dtype");
  const std::string& preset = a.preset;
  const int64_t S = a.size, blocks = a.blocks, nfpb = a.num_frame_per_block;
  const int64_t W = a.window_frames, K = a.sink_frames, steps = a.steps;
  TORCH_CHECK(blocks >= 2 && nfpb > 0 && steps > 0 && W >= nfpb, "bench generate: bad sizes");
  const std::vector<double> all_steps = {1000, 757, 522, 261, 100};
  TORCH_CHECK(steps <= 5, "--steps: at most 5");

  const int64_t roof_n = gemm_roof_size(dev);
  std::printf("GEMM roof (%lld^3 %s on %s): measuring...\n", (long long)roof_n,
              core::dtype_name(dtype).c_str(), dev.str().c_str());
  const double roof = gemm_roof_gflops(dtype, dev);
  std::printf("GEMM roof: %.1f GFLOP/s %s\n\n", roof, core::dtype_name(dtype).c_str());

  // ---------------------------------------------------------------- streaming, toy size
  inference::CausalSamplerOptions so;
  so.denoising_step_list.assign(all_steps.begin(), all_steps.begin() + steps);
  so.num_frame_per_block = nfpb;
  stream_toy(preset, dev, dtype, so, S, blocks, W, K, a.threads, std::max(1, a.reps));

  // ---------------------------------------------------------------- Wan2.1-1.3B block
  auto big = models::WanConfig::preset("wan-1.3b");
  const double h100 = a.h100_tflops * 1e12;
  const double mfu = a.h100_mfu;
  const int64_t Lf = 30 * 52, text_len = 512, nblk = 7, fwd = steps + 1;
  const double video_flops = wan_video_flops(big, fwd, Lf, text_len, nblk, W, K);
  const double frames = 81;
  double eff = -1;
  if (a.wan) eff = time_wan_block(big, a.wan_layers, dev, dtype, roof, Lf, text_len);
  if (a.wan_stream)
    stream_wan(big, so, dev, dtype, roof, steps, video_flops, frames, nblk, text_len);
  report_projection(frames, video_flops, h100, mfu, eff, fwd);
  return 0;
}

}  // namespace causvid::bench
