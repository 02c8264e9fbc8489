// cli/train_command.cpp: `causvid train` (run the stage a config describes, on every rank
// the launcher started), `causvid export` (a checkpoint directory -> a model file) and
// `causvid plan`: per-rank bytes of parameters, gradients and optimizer state of the
// generator, real score and fake score under a config's sharding strategy and mixed
// precision for a given world size (the layout of trainer/fsdp.h; no model is built).
// CausVid's DMD run holds three Wan DiTs: generator and fake score trainable (AdamW), real
// score frozen; the ODE run only the generator.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "core/config.h"
#include "core/dist.h"
#include "core/log.h"
#include "models/wan/presets.h"
#include "models/wan/wan_config.h"
#include "toy/world.h"
#include "models/wan/lora_adapters.h"
#include "trainer/activation_plan.h"
#include "trainer/fsdp.h"
#include "trainer/model_export.h"
#include "trainer/train_model.h"
#include "trainer/trainer.h"

namespace causvid::cli {
namespace {

struct TrainArgs {
  ConfigArgs config;
  std::string resume, output, device;
  std::optional<int64_t> max_iters;
  int samples = 4;
  double timeout = 1800;
  double startup_timeout = 0;  // 0: CAUSVID_STARTUP_TIMEOUT, else 300 s
  bool quiet = false;
};

int run_train(const TrainArgs& a) {
  auto overrides = a.config.sets;
  if (a.max_iters) overrides.push_back("max_iters=" + std::to_string(*a.max_iters));
  if (!a.output.empty()) overrides.push_back("output_path=" + a.output);
  if (!a.device.empty()) overrides.push_back("device=" + a.device);
  core::Config c = core::load_config(a.config.path, overrides);
  core::DistOptions dopt;
  dopt.timeout = std::chrono::milliseconds(static_cast<int64_t>(a.timeout * 1000));
  if (a.startup_timeout > 0)
    dopt.startup_timeout =
        std::chrono::milliseconds(static_cast<int64_t>(a.startup_timeout * 1000));
  dopt.device = c.device;  // chosen once, before the process group exists
  auto dist = core::DistContext::init_from_env(dopt);
  trainer::TrainOptions o;
  o.resume = a.resume;
  o.num_samples = a.samples;
  o.quiet = a.quiet;
  o.handle_preemption = true;
  if (c.text_encoder_path == "toy") o.preview = [](const torch::Tensor& l) { return toy::preview_frames(l); };
  auto r = trainer::run_training(c, dist, o);
  if (r.preempted && dist->is_main())
    LOG_INFO("train: stopped by signal %d after step %d; checkpoint %s; exit 0", r.stop_signal,
             r.end_step, r.last_checkpoint);
  if (dist->is_main())
    LOG_INFO("train: steps %d..%d in %.1f s (%.3f s/step, %.2f it/s); last checkpoint %s",
             r.start_step, r.end_step, r.seconds, r.seconds_per_step,
             r.seconds_per_step > 0 ? 1.0 / r.seconds_per_step : 0.0, r.last_checkpoint);
  return 0;
}

struct ExportArgs {
  std::string checkpoint, out;
  trainer::ExportOptions opt;
  double max_shard_gib = 5;
};

int run_export(ExportArgs a) {
  TORCH_CHECK(a.max_shard_gib > 0, "--max-shard-gib: got ", a.max_shard_gib, ", want > 0");
  TORCH_CHECK(a.opt.format == "diffusers" ||
                  (a.opt.vae.empty() && a.opt.text_encoder.empty() && a.opt.tokenizer.empty()),
              "--vae / --text-encoder / --tokenizer: only with --format diffusers (a WanPipeline "
              "folder); got --format ", a.opt.format);
  a.opt.max_shard_bytes = static_cast<uint64_t>(a.max_shard_gib * double(uint64_t(1) << 30));
  trainer::export_model(a.checkpoint, a.out, a.opt);
  LOG_INFO("export: wrote %s (%s%s%s%s)", a.out, a.opt.format, a.opt.ema ? ", EMA" : "",
           a.opt.dtype.empty() ? "" : ", ", a.opt.dtype);
  return 0;
}

struct PlanArgs {
  ConfigArgs config;
  int world_size = 8, nproc_per_node = 8;
};

std::string gib(int64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", double(b) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

struct PlanModel {
  const char* name;
  bool trainable;
  std::string policy;
  models::WanConfig sizes;  // the real score may be another size (real_score_config)
  int64_t lora_numel = 0;   // > 0: a LoRA adapter row (replicated, no_shard) of this size
};

// Prints the per-model table; returns the summed peak_step bytes.
int64_t print_plan(const core::Config& c, const std::vector<PlanModel>& rows, int S);

int run_plan(const PlanArgs& a) {
  core::Config c = core::read_config(a.config.path, "auto");  // as train reads it
  core::apply_overrides(c, a.config.sets);
  c.validate();
  const int W = a.world_size;
  int L = std::min(W, a.nproc_per_node);
  TORCH_CHECK(W >= 1, "--world-size: got ", W, ", want >= 1");
  TORCH_CHECK(L >= 1 && W % L == 0, "--nproc-per-node: got ", L, ", want a divisor of ", W);
  const std::string& st = c.sharding_strategy;
  const bool hybrid = st == "hybrid_full" || st == "hybrid_zero2";
  const int S = st == "no_shard" ? 1 : hybrid ? L : W;
  const auto wan = models::wan_config(c);
  const int64_t numel = wan.num_params();
  const int64_t block = wan.num_layers > 0 ? (numel - [&] {
    auto nb = wan;
    nb.num_layers = 0;
    return nb.num_params();
  }()) / wan.num_layers : 0;

  // LoRA: the base frozen, the adapters a replicated trainable row of their own.
  const auto lora = c.lora();
  const int64_t lora_numel =
      lora.rank > 0 ? models::lora_param_count(wan, trainer::lora_spec_from_config(c)) : 0;
  std::vector<PlanModel> rows = {
      {"generator", lora.rank == 0, c.generator_fsdp_wrap_strategy, wan}};
  if (lora.rank > 0) rows.push_back({"gen_lora", true, "", wan, lora_numel});
  if (c.is_dmd()) {
    rows.push_back({"real_score", false, c.real_score_fsdp_wrap_strategy,
                    models::real_score_config(c)});
    rows.push_back({"fake_score", !lora.critic, c.fake_score_fsdp_wrap_strategy, wan});
    if (lora.critic) rows.push_back({"fake_lora", true, "", wan, lora_numel});
  }
  std::printf("config %s: strategy %s, mixed_precision %s, world size %d (%d per node), shard "
              "group %d, %lld params per model\n",
              a.config.path.c_str(), st.c_str(), c.mixed_precision ? "true" : "false", W, L, S,
              (long long)numel);
  if (lora.rank > 0)
    std::printf("LoRA rank %d on %s: %lld adapter params per model (%.2f%%), base frozen%s\n",
                lora.rank, c.lora_target_modules.empty() ? "-" : "the block linears",
                (long long)lora_numel, 100.0 * lora_numel / numel,
                lora.critic ? ", the critic on LoRA too" : "");
  const int64_t peak = print_plan(c, rows, S);
  std::printf(
      "GiB per rank; peak_step adds the unsharded compute params and compute-dtype "
      "grads held at once (freed strategies: root + one block when blocks are wrap "
      "units, else the whole model; %lld params per block).\n",
      (long long)block);
  const auto act = trainer::plan_activations(c);
  const int64_t act_peak = std::max(act.generator_step, act.critic_step);
  std::printf("activations (estimate, per micro-batch of %d): generator step %s GiB, critic "
              "step %s GiB (%s)\n",
              c.batch_size, gib(act.generator_step).c_str(), gib(act.critic_step).c_str(),
              act.detail.c_str());
  std::printf("peak per rank with activations: %s GiB", gib(peak + act_peak).c_str());
  if (c.total_batch_size > 0)
    std::printf(" (total_batch_size %d: %d micro-batches per update at this world size)",
                c.total_batch_size, c.accumulation_steps(W));
  std::printf("\n");
  return 0;
}

// Per-block gathering holds the root unit and one block at once, when blocks are units:
// always under the transformer policy; under the size policy only when a block reaches
// min_num_params (5e7; below it the block list is gathered as one unit, as torch's policy
// leaves it to the root). -1 = the whole model.
int64_t gathered_numel(const models::WanConfig& w, const std::string& policy) {
  auto no_blocks = w;
  no_blocks.num_layers = 0;
  const int64_t block =
      w.num_layers > 0 ? (w.num_params() - no_blocks.num_params()) / w.num_layers : 0;
  if (policy == "transformer" || block >= 50000000) return no_blocks.num_params() + block;
  return -1;
}

int64_t print_plan(const core::Config& c, const std::vector<PlanModel>& rows, int S) {
  const std::string& st = c.sharding_strategy;
  std::printf("%-11s %10s %10s %10s %10s %12s %12s %8s\n", "model", "params", "grads",
              "optim", "at_rest", "peak_step", "W=1_at_rest", "ratio");
  trainer::MemoryBytes sum;
  int64_t sum_peak = 0, sum_one = 0;
  for (const auto& r : rows) {
    const bool adapters = r.lora_numel > 0;
    const int64_t numel = adapters ? r.lora_numel : r.sizes.num_params();
    auto m = adapters ? trainer::plan_memory(numel, "no_shard", 1, c.mixed_precision, true)
                      : trainer::plan_memory(numel, st, S, c.mixed_precision, r.trainable,
                                             gathered_numel(r.sizes, r.policy));
    auto one = trainer::plan_memory(numel, adapters ? "no_shard" : st, 1, c.mixed_precision,
                                    r.trainable);
    std::printf("%-11s %10s %10s %10s %10s %12s %12s %8.3f\n", r.name,
                gib(m.at_rest.params).c_str(), gib(m.at_rest.grads).c_str(),
                gib(m.at_rest.optimizer).c_str(), gib(m.at_rest.total()).c_str(),
                gib(m.at_rest.total() + m.peak_extra).c_str(),
                gib(one.at_rest.total()).c_str(),
                double(m.at_rest.total()) / double(one.at_rest.total()));
    sum.params += m.at_rest.params;
    sum.grads += m.at_rest.grads;
    sum.optimizer += m.at_rest.optimizer;
    sum_peak += m.at_rest.total() + m.peak_extra;
    sum_one += one.at_rest.total();
  }
  std::printf("%-11s %10s %10s %10s %10s %12s %12s %8.3f\n", "total", gib(sum.params).c_str(),
              gib(sum.grads).c_str(), gib(sum.optimizer).c_str(), gib(sum.total()).c_str(),
              gib(sum_peak).c_str(), gib(sum_one).c_str(),
              double(sum.total()) / double(sum_one));
  return sum_peak;
}

}  // namespace

void add_train_commands(Commands& cmds) {
  auto pl = std::make_shared<PlanArgs>();
  CLI::App* app = cmds.add(
      "plan",
      "Per-rank memory (GiB) of params / grads / optimizer state of generator, real score and "
      "fake score under the config's sharding_strategy and mixed_precision at a world size.",
      [pl] { return run_plan(*pl); });
  add_config_options(*app, pl->config, "config YAML (e.g. configs/wan_causal_dmd.yaml)")
      ->required();
  app->add_option("--world-size", pl->world_size, "number of ranks");
  app->add_option("--nproc-per-node", pl->nproc_per_node,
                  "ranks per node (hybrid strategies shard within)");

  auto tr = std::make_shared<TrainArgs>();
  app = cmds.add("train",
                 "Train the stage the config describes (distillation_loss dmd | ode | "
                 "diffusion). Launch several ranks with launch/*.sh (torchrun, SLURM, mpirun, "
                 "local); checkpoints go to <output_path>/checkpoint_model_<step>/.",
                 [tr] { return run_train(*tr); });
  add_config_options(*app, tr->config, "config YAML (configs/*.yaml)")->required();
  app->add_option("--resume", tr->resume, "auto (newest complete checkpoint) or a checkpoint dir");
  add_optional(*app, "--max-iters", tr->max_iters, "override max_iters");
  app->add_option("--output", tr->output, "override output_path");
  app->add_option("--samples", tr->samples, "sample previews per checkpoint (0 = none)");
  app->add_option("--timeout", tr->timeout, "collective timeout in seconds (CausVid: 1800)");
  app->add_option("--startup-timeout", tr->startup_timeout,
                  "bound on each start-up phase (store connect, rendezvous, process groups, "
                  "first barrier) in seconds; 0 = env CAUSVID_STARTUP_TIMEOUT, else 300");
  add_device_option(*app, tr->device);
  app->add_flag("--quiet", tr->quiet, "no per-step progress line");

  auto ex = std::make_shared<ExportArgs>();
  app = cmds.add("export", "Write a generator in another layout (CausVid, Wan, diffusers, ComfyUI).",
                 [ex] { return run_export(*ex); });
  app->add_option("CHECKPOINT", ex->checkpoint,
                  "checkpoint_model_<step> directory or model.pt, a Wan / diffusers folder, a "
                  "safetensors or ComfyUI file")
      ->required();
  app->add_option("--out", ex->out, "output file (diffusers: the transformer folder)")->required();
  app->add_option("--format", ex->opt.format,
                  "causvid: model.pt {generator, critic} with 'model.' keys (CausVid's "
                  "torch.load); safetensors: plain WanModel keys; diffusers: a "
                  "WanTransformer3DModel folder; comfyui: one file, model.diffusion_model. keys")
      ->check(CLI::IsMember({"causvid", "safetensors", "diffusers", "comfyui"}));
  app->add_option("--dtype", ex->opt.dtype,
                  "weight dtype: bf16 | fp16 | fp32, and for comfyui fp8_e4m3fn | "
                  "fp8_e4m3fn_scaled (default: as stored; comfyui bf16)")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32", "fp8_e4m3fn", "fp8_e4m3fn_scaled"}));
  app->add_option("--num-heads", ex->opt.num_heads,
                  "attention heads for diffusers' config.json (default dim / 128, as Wan2.1)");
  app->add_option("--max-shard-gib", ex->max_shard_gib, "diffusers shard size (default 5)");
  app->add_option("--vae", ex->opt.vae,
                  "diffusers: also write this VAE (Wan2.1_VAE.pth, or a diffusers vae/ folder): "
                  "OUT becomes a whole WanPipeline folder");
  app->add_option("--text-encoder", ex->opt.text_encoder,
                  "diffusers: also write this umT5 encoder (models_t5_umt5-xxl-enc-bf16.pth or a "
                  "transformers folder) as text_encoder/");
  app->add_option("--tokenizer", ex->opt.tokenizer,
                  "diffusers: also copy this tokenizer (google/umt5-xxl folder or spiece.model) "
                  "as tokenizer/");
  app->add_option("--flow-shift", ex->opt.flow_shift,
                  "diffusers pipeline: the scheduler's flow_shift (default 3)");
  app->add_flag("--ema", ex->opt.ema, "export the generator EMA as the generator");
}

}  // namespace causvid::cli
