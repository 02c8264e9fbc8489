// cli/smoke_command.cpp: `causvid smoke`, the main job's embedded default until the CPU
// toy pipeline lands: builds a small random Wan DiT, samples a clip bidirectionally with a
// few-step schedule and autoregressively with the causal KV-cache pipeline, checks that the
// causal KV-cache rollout equals the block-causal training forward on the same inputs, and
// prints timings. Also `causvid check-fixtures DIR...`: one line per golden fixture (name,
// kind, max abs error, tolerance, status); exit 1 if any is not PASS.
#include <chrono>
#include <cstdio>

#include "checks/fixtures.h"
#include "cli/commands.h"
#include "core/log.h"
#include "core/runtime.h"
#include "inference/causal_pipeline.h"

namespace causvid::cli {

namespace {

struct SmokeArgs {
  std::string preset = "tiny";
  int64_t frames = 6, size = 8, num_frame_per_block = 3, seed = 0;
};

int run_smoke(const SmokeArgs& a) {
  const int64_t F = a.frames, S = a.size, nfpb = a.num_frame_per_block, seed = a.seed;
  TORCH_CHECK(F > 0 && F % nfpb == 0, "--frames ", F, " must be a positive multiple of "
              "--num-frame-per-block ", nfpb);
  TORCH_CHECK(S > 0 && S % 2 == 0, "--size: want a positive even number, got ", S);

  auto cfg = models::WanConfig::preset(a.preset);
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

struct CheckFixturesArgs {
  std::vector<std::string> dirs;
  bool verbose = false;
  std::string device = "cpu", dtype = "fp32";
};

int run_check_fixtures(const CheckFixturesArgs& a) {
  checks::FixturePlacement place;
  place.device = core::resolve_device(a.device);
  place.dtype = core::parse_dtype(a.dtype, "--dtype");
  int bad = 0, total = 0;
  std::printf("%-44s %-18s %12s %22s  %s\n", "fixture", "kind", "max_abs_err", "tolerance(a,r)",
              "status");
  for (const auto& root : a.dirs) {
    for (const auto& d : checks::discover_fixtures(root)) {
      auto r = checks::run_fixture(d, place);
      ++total;
      char tol[64];
      std::snprintf(tol, sizeof(tol), "%.1e,%.1e", r.tol.atol, r.tol.rtol);
      std::printf("%-44s %-18s %12.3e %22s  %s\n", r.name.c_str(), r.kind.c_str(), r.max_abs, tol,
                  checks::status_name(r.status).c_str());
      if (a.verbose) {
        for (const auto& c : r.checks)
          std::printf("    %-40s max_abs %.3e max_rel %.3e tol %.1e,%.1e %s\n", c.name.c_str(),
                      c.max_abs, c.max_rel, c.tol.atol, c.tol.rtol, c.pass ? "ok" : "NOT OK");
      }
      if (r.status != checks::FixtureStatus::kPass) {
        ++bad;
        std::printf("    %s\n", r.message.c_str());
      }
    }
  }
  std::printf("%d fixtures, %d passed, %d not passed\n", total, total - bad, bad);
  return bad == 0 ? 0 : 1;
}

}  // namespace

void add_smoke_commands(Commands& cmds) {
  auto sm = std::make_shared<SmokeArgs>();
  CLI::App* app = cmds.add("smoke",
                           "Tiny bidirectional + causal forward/generation run with random weights.",
                           [sm] { return run_smoke(*sm); });
  app->add_option("--preset", sm->preset, "model preset");
  app->add_option("--frames", sm->frames, "latent frames");
  app->add_option("--size", sm->size, "latent height = width");
  app->add_option("--num-frame-per-block", sm->num_frame_per_block, "latent frames per causal block");
  add_seed_option(*app, sm->seed);

  auto cf = std::make_shared<CheckFixturesArgs>();
  app = cmds.add("check-fixtures",
                 "Run the golden fixture checks. Each DIR is a fixture directory (with "
                 "meta.json) or a folder of them. Exit code 0 only if every fixture passes.",
                 [cf] { return run_check_fixtures(*cf); });
  app->add_option("DIR", cf->dirs, "fixture directory or folder of fixture directories")
      ->required();
  app->add_flag("--verbose", cf->verbose, "print every output's error, not only the worst");
  add_device_option(*app, cf->device, "run the models on cpu, cuda or cuda:N");
  add_dtype_option(*app, "--dtype", cf->dtype,
                   "model dtype: fp32 (the fixture's tolerance) or bf16 (checks::bf16_tolerance)");
}

}  // namespace causvid::cli
