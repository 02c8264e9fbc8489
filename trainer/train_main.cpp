// trainer/train_main.cpp: `causvid train` (run the stage a config describes, on every rank
// the launcher started) and `causvid export` (a checkpoint directory -> a model file).
#include <cstdio>

#include "cli/commands.h"
#include "core/args.h"
#include "core/config.h"
#include "core/dist.h"
#include "core/log.h"
#include "toy/world.h"
#include "trainer/trainer.h"

namespace causvid::cli {

int train_main(int argc, char** argv) {
  core::ArgParser p("causvid train",
                    "Train the stage the config describes (distillation_loss dmd | ode | "
                    "diffusion). Launch several ranks with launch/*.sh (torchrun, SLURM, mpirun, "
                    "local); checkpoints go to <output_path>/checkpoint_model_<step>/.");
  auto& file = p.flag("--config", "", "config YAML (configs/*.yaml)");
  auto& sets = p.multi("--set", "override one key, key=value (repeatable)");
  auto& resume = p.flag("--resume", "", "auto (newest complete checkpoint) or a checkpoint dir");
  auto& max_iters = p.flag("--max-iters", "", "override max_iters");
  auto& out = p.flag("--output", "", "override output_path");
  auto& samples = p.flag("--samples", "4", "sample previews per checkpoint (0 = none)");
  auto& timeout = p.flag("--timeout", "1800", "collective timeout in seconds (CausVid: 1800)");
  auto& device = p.flag("--device", "", "auto, cpu, cuda (= cuda:LOCAL_RANK) or cuda:N "
                        "(default: the config's device)");
  auto& quiet = p.toggle("--quiet", "no per-step progress line");
  if (!p.parse(argc, argv)) return p.exit_code();
  if (file.empty()) {
    std::fprintf(stderr, "causvid train: --config FILE is required (see --help)\n");
    return 2;
  }
  auto overrides = sets;
  if (!max_iters.empty()) overrides.push_back("max_iters=" + max_iters);
  if (!out.empty()) overrides.push_back("output_path=" + out);
  if (!device.empty()) overrides.push_back("device=" + device);
  core::Config c = core::load_config(file, overrides);
  core::DistOptions dopt;
  dopt.timeout = std::chrono::milliseconds(
      static_cast<int64_t>(core::ArgParser::to_double("--timeout", timeout) * 1000));
  dopt.device = c.device;  // chosen once, before the process group exists
  auto dist = core::DistContext::init_from_env(dopt);
  trainer::TrainOptions o;
  o.resume = resume;
  o.num_samples = core::ArgParser::to_int("--samples", samples);
  o.quiet = quiet == "1";
  if (c.text_encoder_path == "toy") o.preview = [](const torch::Tensor& l) { return toy::preview_frames(l); };
  auto r = trainer::run_training(c, dist, o);
  if (dist->is_main())
    LOG_INFO("train: steps %d..%d in %.1f s (%.3f s/step, %.2f it/s); last checkpoint %s",
             r.start_step, r.end_step, r.seconds, r.seconds_per_step,
             r.seconds_per_step > 0 ? 1.0 / r.seconds_per_step : 0.0, r.last_checkpoint);
  return 0;
}

int export_main(int argc, char** argv) {
  core::ArgParser p("causvid export",
                    "Write a model file from a training checkpoint directory.");
  auto& ckpt = p.positional("CHECKPOINT", "checkpoint_model_<step> directory (or its model.pt)");
  auto& out = p.flag("--out", "", "output file");
  auto& format = p.flag("--format", "causvid",
                        "causvid: model.pt {generator, critic} with 'model.' keys (CausVid's "
                        "torch.load); safetensors: the generator's plain WanModel keys");
  auto& ema = p.toggle("--ema", "export the generator EMA as the generator");
  if (!p.parse(argc, argv)) return p.exit_code();
  if (out.empty()) {
    std::fprintf(stderr, "causvid export: --out FILE is required (see --help)\n");
    return 2;
  }
  trainer::export_checkpoint(ckpt, out, format, ema == "1");
  LOG_INFO("export: wrote %s (%s%s)", out, format, ema == "1" ? ", EMA" : "");
  return 0;
}

}  // namespace causvid::cli
