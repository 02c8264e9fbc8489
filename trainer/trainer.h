// trainer/trainer.h: the stage trainers behind `causvid train`. Ports CausVid's
// causvid/train_distillation.py (Trainer.train_one_step: generator update every
// dfake_gen_update_ratio steps, critic every step, clip at max_grad_norm 10, separate AdamW
// per model) and causvid/train_ode.py (ODE regression every step), plus a flow-matching
// pretraining stage ("diffusion", used to train small teachers and to fine-tune) and
// Self-Forcing's generator EMA (ema_weight, ema_start_step).
//
// The stage is the config's distillation_loss, looked up in the stage registry (stage.h:
// dmd, ode, diffusion; each in trainer/stages/). The trainer is the loop around it: data,
// text conditioning, one stage step, the progress line and metrics, checkpoints, samples.
//
// Checkpoints (trainer/checkpoint.h, one scheme for every stage):
// <checkpoint_root>/checkpoint_model_<step, 6 digits>/ (step = updates done), written as a
// hidden temporary directory renamed once at the end (a directory with the final name is
// always complete):
//   <model>.shard-K-of-S.safetensors   sharded master weights + AdamW moments + EMA per
//                                      model (generator, critic): resume, any world size
//   model.pt            CausVid's layout {"generator": {"model.<key>"}, "critic": ...,
//                       "generator_ema": ...} (torch.load-able; generate/eval/export read it)
//   rng/rank<r>.bin     each rank's generator state
//   config.yaml, trainer_state.json (written last: step, data position, world size, seed,
//                       stage, the shard layout of each model)
// Output beside them: metrics.jsonl (one JSON line per step), TensorBoard event files,
// loss_curves.png (refreshed at each checkpoint), samples/step_<step>.png (contact sheets of
// the generator's samples).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/dist.h"
#include "trainer/checkpoint.h"

namespace causvid::trainer {

// latents [F, C, H, W] -> frames [F, 3, H', W'] uint8 for previews.
using PreviewFn = std::function<torch::Tensor(const torch::Tensor&)>;

struct TrainOptions {
  std::string resume;       // overrides config.resume when non-empty: "auto" | a checkpoint dir
  int num_samples = 4;      // sample previews per checkpoint (0 = none)
  PreviewFn preview;        // default: first three latent channels, scaled
  int teacher_sample_steps = 50;  // diffusion stage: steps of the sample previews' sampler
  bool quiet = false;       // no per-step progress line (metrics.jsonl is still written)
  // SIGTERM / SIGUSR1 (core/preempt.h): every rank finishes its step, a checkpoint is written
  // and run_training returns with preempted = true (within the config's preempt_grace_s, else
  // the process exits 1). `causvid train` turns it on.
  bool handle_preemption = false;
};

struct TrainResult {
  int64_t start_step = 0, end_step = 0;
  std::string last_checkpoint;
  double seconds = 0;           // wall time of the run
  double seconds_per_step = 0;  // mean time of a training step (checkpoints excluded)
  std::map<std::string, double> last_metrics;
  bool preempted = false;  // stopped by SIGTERM / SIGUSR1 after checkpointing end_step
  int stop_signal = 0;
};

// Runs the stage the config describes until max_iters (collective over `dist`).
TrainResult run_training(const core::Config& cfg, std::shared_ptr<core::DistContext> dist,
                         const TrainOptions& opts = {});

}  // namespace causvid::trainer
