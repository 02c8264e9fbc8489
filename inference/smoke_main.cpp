// inference/smoke_main.cpp: `causvid smoke`, the main job's embedded default until the CPU
// toy pipeline lands: builds a small random Wan DiT, samples a clip bidirectionally with a
// few-step schedule and autoregressively with the causal KV-cache pipeline, checks that the
// causal KV-cache rollout equals the block-causal training forward on the same inputs, and
// prints timings.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "core/args.h"
#include "core/log.h"
#include "inference/causal_pipeline.h"

namespace causvid::cli {

int smoke_main(int argc, char** argv) {
  core::ArgParser p("causvid smoke",
                    "Tiny bidirectional + causal forward/generation run with random weights.");
  auto& preset = p.flag("--preset", "tiny", "model preset");
  auto& frames = p.flag("--frames", "6", "latent frames");
  auto& size = p.flag("--size", "8", "latent height = width");
  auto& nfpb_s = p.flag("--num-frame-per-block", "3", "latent frames per causal block");
  auto& seed_s = p.flag("--seed", "0", "random seed");
  if (!p.parse(argc, argv)) return p.exit_code();
  const int64_t F = core::ArgParser::to_int("--frames", frames);
  const int64_t S = core::ArgParser::to_int("--size", size);
  const int64_t nfpb = core::ArgParser::to_int("--num-frame-per-block", nfpb_s);
  const int64_t seed = core::ArgParser::to_int("--seed", seed_s);
  TORCH_CHECK(F > 0 && F % nfpb == 0, "--frames ", F, " must be a positive multiple of "
              "--num-frame-per-block ", nfpb);
  TORCH_CHECK(S > 0 && S % 2 == 0, "--size: want a positive even number, got ", S);

  auto cfg = models::WanConfig::preset(preset);
  models::WanModel net(cfg);
  net->init_weights(seed);
  {  // init_weights zeroes the head (outputs would be trivially 0): perturb it.
    torch::NoGradGuard ng;
    torch::manual_seed(seed);
    net->head->head->weight.normal_(0, 0.02);
  }
  net->eval();
  torch::NoGradGuard ng;
  auto gen = at::detail::createCPUGenerator(seed);
  auto noise = at::randn({1, F, cfg.in_dim, S, S}, gen, torch::TensorOptions());
  auto ctx = at::randn({1, cfg.text_len / 2, cfg.text_dim}, gen, torch::TensorOptions());
  const std::vector<double> steps = {1000, 757, 522};
  auto now = [] { return std::chrono::steady_clock::now(); };
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };

  models::WanDiffusionWrapper bidir(net, /*causal=*/false);
  auto t0 = now();
  auto clip = inference::sample_bidirectional(bidir, noise, ctx, steps, gen);
  auto t1 = now();
  std::printf("bidirectional %zu-step sample: %s in %.3f s, mean %.4f std %.4f\n", steps.size(),
              c10::str(clip.sizes()).c_str(), secs(t0, t1), clip.mean().item<double>(),
              clip.std().item<double>());

  models::WanDiffusionWrapper causal(net, /*causal=*/true, nfpb);
  inference::CausalSamplerOptions so;
  so.denoising_step_list = steps;
  so.num_frame_per_block = nfpb;
  inference::CausalPipeline pipe(causal, so);
  int64_t blocks = 0;
  auto t2 = now();
  auto video = pipe.generate(noise, ctx, {}, gen, [&](int64_t, const torch::Tensor&) { ++blocks; });
  auto t3 = now();
  std::printf("causal KV-cache generation: %lld blocks of %lld frames, %s in %.3f s (%.1f latent "
              "frames/s), KV cache %.2f MiB\n",
              (long long)blocks, (long long)nfpb, c10::str(video.sizes()).c_str(), secs(t2, t3),
              F / secs(t2, t3), pipe.cache()->bytes() / 1048576.0);

  // Consistency: the KV-cache forward over clean context blocks equals the block-causal
  // training forward (the property CausVid's training mask is designed for).
  auto t = torch::full({1, F}, 0.0f);
  auto train_x0 = causal.forward(video, t, ctx);
  pipe.reset(1, (S / 2) * (S / 2), F);
  pipe.set_context(ctx);
  models::CrossAttnCache xc;
  double max_err = 0;
  for (int64_t b = 0; b < F / nfpb; ++b) {
    auto blk = video.slice(1, b * nfpb, (b + 1) * nfpb);
    auto cached = causal.forward_cached(blk, t.slice(1, 0, nfpb), ctx, *pipe.cache(), xc,
                                        b * nfpb * (S / 2) * (S / 2));
    max_err = std::max(max_err,
                       (cached - train_x0.slice(1, b * nfpb, (b + 1) * nfpb)).abs().max().item<double>());
  }
  std::printf("KV-cache vs block-causal training forward: max abs diff %.2e (%s)\n", max_err,
              max_err < 1e-3 ? "consistent" : "INCONSISTENT");
  TORCH_CHECK(torch::isfinite(video).all().item<bool>() && torch::isfinite(clip).all().item<bool>(),
              "smoke: non-finite output");
  return max_err < 1e-3 ? 0 : 1;
}

}  // namespace causvid::cli
