// bench/train_bench.cpp: `causvid bench train`: seconds per training step of each stage
// (diffusion pretraining, causal ODE regression, causal DMD) through the real trainer
// (trainer::run_training on a synthetic LMDB + prompt cache in a temp dir), at the toy
// world's size by default. Ratios: the model's matmul FLOPs per step / step time against the
// GEMM roof measured in the same run.
#include <cstdio>
#include <filesystem>
#include <random>

#include "bench/bench_util.h"
#include "bench/benches.h"
#include "core/dist.h"
#include "core/config.h"
#include "core/fs.h"
#include "core/log.h"
#include "data/array_lmdb.h"
#include "data/prompt_cache.h"
#include "models/t5/tokenizer.h"
#include "models/t5/umt5.h"
#include "models/wan/presets.h"
#include "trainer/trainer.h"

namespace causvid::bench {
namespace {

const char* kBaseYaml = R"(
distillation_loss: dmd
model_name: causal_wan
generator_name: causal_wan
real_name: wan
fake_name: wan
generator_task: causal_video
real_task_type: bidirectional_video
fake_task_type: bidirectional_video
denoising_step_list: [1000, 757, 522, 0]
num_train_timestep: 1000
timestep_shift: 8.0
real_guidance_scale: 3.5
denoising_loss_type: flow
dfake_gen_update_ratio: 5
mixed_precision: false
seed: 1
sharding_strategy: no_shard
lr: 1.0e-4
beta1: 0.9
beta2: 0.999
batch_size: 1
log_iters: 1000000
negative_prompt: 'static'
backward_simulation: false
num_frame_per_block: 3
warp_denoising_step: false
gradient_checkpointing: false
dit_path: random
data_path: none
output_path: none
image_or_video_shape: [1, 6, 4, 16, 16]
num_workers: 2
)";

// Matmul FLOPs of one forward of the DiT on B x tokens (linears + attention products).
double forward_flops(const models::WanConfig& w, int64_t B, int64_t L, int64_t text_tokens) {
  const double d = w.dim, f = w.ffn_dim;
  const double per_layer = 2.0 * L * (4 * d * d)     // self-attn qkv + o
                           + 2.0 * L * (2 * d * d)   // cross-attn q + o
                           + 2.0 * text_tokens * 2 * d * d  // cross-attn k, v
                           + 2.0 * L * 2 * d * f     // ffn
                           + 4.0 * L * L * d         // self-attn scores + values
                           + 4.0 * L * text_tokens * d;  // cross-attn
  return B * w.num_layers * per_layer;
}

// Random latents and ODE pairs (LMDB), 32 prompts and a prompt cache from a random small umT5.
void write_synthetic_data(const std::filesystem::path& dir, const models::WanConfig& dims,
                          int64_t B, int64_t F, int64_t S) {
  const int64_t C = dims.in_dim;
  std::vector<std::string> prompts;
  for (int i = 0; i < 32; ++i) prompts.push_back("prompt number " + std::to_string(i));
  prompts.push_back("static");
  const int64_t rows = std::max<int64_t>(2 * B, 32);
  std::vector<std::string> row_prompts;
  for (int64_t i = 0; i < rows; ++i) row_prompts.push_back(prompts[i % 32]);
  {
    torch::manual_seed(0);
    data::ArrayLmdbWriter w((dir / "latents").string());
    w.put_tensor_rows("latents", 0, torch::randn({rows, F, C, S, S}));
    w.put_string_rows("prompts", 0, row_prompts);
    w.finish({{"latents", {rows, F, C, S, S}}, {"prompts", {rows}}});
    data::ArrayLmdbWriter o((dir / "ode").string());
    o.put_tensor_rows("latents", 0, torch::randn({rows, 4, F, C, S, S}));
    o.put_string_rows("prompts", 0, row_prompts);
    o.finish({{"latents", {rows, 4, F, C, S, S}}, {"prompts", {rows}}});
    auto tok = std::shared_ptr<models::UMT5Tokenizer>(models::UMT5Tokenizer::bytes(dims.text_len));
    auto uc = models::UMT5Config::tiny(tok->vocab_size());
    uc.dim = dims.text_dim;
    uc.dim_attn = dims.text_dim;
    models::UMT5Encoder enc(uc);
    enc->eval();
    models::UMT5TextEncoder te(enc, tok);
    data::embed_prompts(te, prompts, (dir / "cache").string(), torch::kFloat32, 8, false, "bench");
  }
}

// Appends `stage`'s config overrides to *o; returns its matmul FLOPs per step (forward = 1x,
// backward = 2x) for a forward of `fwd` FLOPs.
double stage_overrides(const std::string& stage, const std::filesystem::path& dir, double fwd,
                       std::vector<std::string>* o, std::string* label) {
  if (stage == "diffusion") {
    o->insert(o->end(), {"distillation_loss=diffusion", "model_name=wan", "generator_name=",
                         "real_name=", "fake_name=", "generator_task=bidirectional_video",
                         "real_task_type=", "fake_task_type=", "text_dropout=0.1",
                         "data_path=" + (dir / "latents").string()});
    return 3 * fwd;
  } else if (stage == "ode") {
    o->insert(o->end(), {"distillation_loss=ode", "generator_name=", "real_name=", "fake_name=",
                         "real_task_type=", "fake_task_type=",
                         "data_path=" + (dir / "ode").string()});
    return 3 * fwd;
  } else if (stage == "dmd") {
    // Averaged over a 5-step cycle: 1 generator step (G fwd+bwd, fake fwd, real fwd x2) and
    // 5 critic steps (G fwd, fake fwd+bwd).
    o->insert(o->end(), {"data_path=" + (dir / "latents").string()});
    *label = "dmd (5-step average)";
    return (3 * fwd + fwd + 2 * fwd + 5 * (fwd + 3 * fwd)) / 5.0;
  } else {
    TORCH_CHECK(false, "--stages: unknown stage '", stage, "', want diffusion | ode | dmd");
  }
  return 0;
}

}  // namespace

int bench_train(const TrainBenchArgs& a) {
  const auto& preset = a.preset;
  const auto& batch = a.batch;
  const auto& frames = a.frames;
  const auto& size = a.size;
  const auto& steps = a.steps;
  const auto& stages = a.stages;
  const auto& device_s = a.device;
  const auto& mp = a.mixed_precision;
  const int64_t B = batch;
  const int64_t F = frames;
  const int64_t S = size;
  const int64_t N = steps;
  const auto dims = models::wan_preset(preset);
  const int64_t C = dims.in_dim;

  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("causvid_bench_train_" + std::to_string(getpid()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path d;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(d, ec);
    }
  } cleanup{dir};

  write_synthetic_data(dir, dims, B, F, S);

  auto dist = core::DistContext::init(core::DistEnv{}, [&] {
    core::DistOptions d;
    d.device = device_s;
    return d;
  }());
  const auto dev = dist->device();
  const auto roof_dt = mp ? torch::kBFloat16 : torch::kFloat32;
  const double roof = gemm_roof_gflops(roof_dt, dev);
  const auto& wcfg = dims;
  const int64_t L = F * (S / 2) * (S / 2);
  const double fwd = forward_flops(wcfg, B, L, dims.text_len);
  std::printf("bench train: preset %s (%.2fM params), batch %lld x %lld tokens, %s on %s, GEMM "
              "roof %.1f GFLOP/s\n",
              preset.c_str(), wcfg.num_params() / 1e6, (long long)B, (long long)L,
              mp ? "bf16 mixed precision" : "fp32", dev.str().c_str(), roof);
  std::printf("%-22s %10s %10s %12s %10s\n", "stage", "s/step", "it/s", "GFLOP/step", "% roof");

  std::stringstream ss(stages);
  std::string stage;
  while (std::getline(ss, stage, ',')) {
    core::Config c = core::parse_config(kBaseYaml, "<bench train>");
    std::vector<std::string> o = {"model_preset=" + preset, "device=" + device_s,
                                  std::string("mixed_precision=") + (mp ? "true" : "false"),
                                  "batch_size=" + std::to_string(B),
                                  "prompt_cache=" + (dir / "cache").string(),
                                  "output_path=" + (dir / ("out_" + stage)).string(),
                                  "image_or_video_shape=[1, " + std::to_string(F) + ", " +
                                      std::to_string(C) + ", " + std::to_string(S) + ", " +
                                      std::to_string(S) + "]"};
    std::string label = stage;
    const double flops = stage_overrides(stage, dir, fwd, &o, &label);
    core::apply_overrides(c, o);
    c.validate();
    trainer::TrainOptions to;
    to.quiet = true;
    to.num_samples = 0;
    c.max_iters = 2;
    trainer::run_training(c, dist, to);  // warm-up (writes a checkpoint)
    c.max_iters = 2 + (stage == "dmd" ? std::max<int64_t>(N, 5) : N);
    auto r = trainer::run_training(c, dist, to);
    // The checkpoint written at the end is part of the run; report the steps' time only.
    const double s = r.seconds_per_step;
    std::printf("%-22s %10.3f %10.2f %12.2f %9.1f%%\n", label.c_str(), s, 1.0 / s, flops / 1e9,
                100.0 * flops / s / 1e9 / roof);
  }
  return 0;
}

}  // namespace causvid::bench
