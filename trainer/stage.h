// trainer/stage.h: a training stage as a unit. A stage builds its models, runs one training
// step on a batch and returns its metrics, names the models a checkpoint holds, and draws
// the samples of the sample sheets. The trainer (trainer.h) is the loop around it: data,
// text conditioning, step, log, checkpoint, samples; it knows no stage by name.
//
// Stages are registered by name (the config's distillation_loss):
//   dmd        trainer/stages/dmd_stage.cpp        CausVid's DMD (bidirectional, asymmetric
//                                                  causal): generator + frozen real score
//                                                  with CFG + critic
//   ode        trainer/stages/ode_stage.cpp        CausVid's causal ODE regression
//   diffusion  trainer/stages/diffusion_stage.cpp  flow-matching pretraining / fine-tuning
// Adding a stage: one file with a class deriving from Stage and one line in
// trainer/stages/builtin_stages.cpp (or register_stage() from a higher layer).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/dist.h"
#include "core/random.h"
#include "data/datasets.h"
#include "models/t5/text_conditioner.h"
#include "trainer/train_model.h"

namespace causvid::trainer {

// What a stage gets from the runtime. Every random draw of a step goes through `rng`: in
// training a core::GeneratorSource over the rank's CPU generator (seeded per rank;
// core/random.h moves draws to `device`), in the train_step fixtures a core::ReplaySource of
// the reference's recorded draws.
struct StageEnv {
  const core::Config& cfg;
  std::shared_ptr<core::DistContext> dist;
  torch::Device device;
  uint64_t seed;                    // the run's resolved seed (models' init)
  core::RandomSource& rng;
  models::TextConditioner& text;
  std::vector<int64_t> frame_shape;  // [F, C, H, W] of one sample
  UpdateRule& updates;
  int64_t teacher_sample_steps = 50;  // sample sheets of a teacher (diffusion stage)

  // The negative prompt's embedding (CFG's unconditional branch, text dropout), [B, T, E]
  // float32 on `device`; encoded once, on first use.
  torch::Tensor uncond(int64_t B);
  // N(0, 1) of `shape` from rng, float32 on `device`.
  torch::Tensor randn(at::IntArrayRef shape);
  // [B, F, C, H, W] for a batch of B.
  std::vector<int64_t> batch_shape(int64_t B) const;

  torch::Tensor uncond1_cache;  // [1, T, E], set by uncond()
};

// One micro-batch: the loader's batch and its text conditioning.
struct MicroBatch {
  const data::Batch* batch;  // latents on the device when the dataset has them
  torch::Tensor cond;        // [B, T, E] float32 text conditioning of batch->prompts
};

struct StepInput {
  const data::Batch& batch;  // latents on the device when the dataset has them
  torch::Tensor cond;        // [B, T, E] float32 text conditioning of batch.prompts
  int64_t step;              // updates done before this step
  // Gradient accumulation (total_batch_size): the update's further micro-batches. Every
  // model update of the step runs over all of them (Stage::accumulate).
  std::vector<MicroBatch> more = {};
  size_t size() const { return 1 + more.size(); }
  MicroBatch micro(size_t i) const { return i == 0 ? MicroBatch{&batch, cond} : more[i - 1]; }
};

class Stage {
 public:
  virtual ~Stage() = default;
  // Whether the stage reads latents from data_path (prompts alone do not do).
  virtual bool needs_latents() const = 0;
  // Checks the dataset against the config (errors name the key); called before training.
  virtual void check_data(const data::TrainDataset& ds) const {}
  // One training step: metrics by name ("generator_loss", "critic_grad_norm", ...).
  virtual std::map<std::string, double> step(const StepInput& in) = 0;
  // The model whose samples the sheets show and whose weights generate/export read.
  virtual TrainModel& generator() = 0;
  // Every trained model with its checkpoint name, the generator first.
  virtual std::vector<ModelState> checkpoint_states() = 0;
  // Every model of the stage, trained or frozen, under its CausVid role (generator,
  // real_score, fake_score), the generator first: what the train_step fixtures load their
  // weights into and read back after a step.
  virtual std::vector<std::pair<std::string, TrainModel*>> models() = 0;
  // Samples [N, F, C, H, W] from `noise` for the sample sheets (no grad; collective).
  // Default: the generator's few-step sampler (causal pipeline or bidirectional).
  virtual torch::Tensor sample(const torch::Tensor& noise, const torch::Tensor& cond,
                               at::Generator& g);

 protected:
  explicit Stage(StageEnv& env) : env_(env) {}
  // Gradient accumulation over the step's micro-batches: `loss_of` returns one
  // micro-batch's loss (and may write metrics); its backward runs scaled by 1 / count, so
  // the accumulated gradient is the mean over samples. Returns the mean loss; the metrics
  // written are averaged likewise.
  using MicroLoss = std::function<torch::Tensor(const MicroBatch&, std::map<std::string, double>&)>;
  double accumulate(const StepInput& in, const MicroLoss& loss_of,
                    std::map<std::string, double>& metrics);
  StageEnv& env_;
};

// The generator as the config describes it (generator_name causal or not; weights from
// generator_ckpt, else the base model), with an AdamW (adamw_from_config) and, when
// ema_weight > 0, an EMA, unless it is frozen (generator_grad {model: false}).
std::unique_ptr<TrainModel> build_generator(StageEnv& env);

// A stage built around the config's generator (build_generator): ode, diffusion, dmd.
class GeneratorStage : public Stage {
 public:
  TrainModel& generator() override { return *gen_; }
  std::vector<ModelState> checkpoint_states() override {
    return {gen_->checkpoint_state("generator")};
  }
  std::vector<std::pair<std::string, TrainModel*>> models() override {
    return {{"generator", gen_.get()}};
  }

 protected:
  explicit GeneratorStage(StageEnv& env) : Stage(env), gen_(build_generator(env)) {}
  // After backward: the generator's update (env.updates, clipped at the generator's norm)
  // and its EMA. Returns the gradient norm before clipping.
  double update_generator(int64_t step);
  // A step of one loss on the generator alone (ode, diffusion, teacher_forcing): the loss of
  // every micro-batch (accumulate), then the update; metrics generator_loss and
  // generator_grad_norm.
  std::map<std::string, double> generator_only_step(
      const StepInput& in, const std::function<torch::Tensor(const MicroBatch&)>& loss_of);

  std::unique_ptr<TrainModel> gen_;
};

using StageFactory = std::function<std::unique_ptr<Stage>(StageEnv&)>;

// Registers a stage under `name` (an error if the name is taken).
void register_stage(const std::string& name, StageFactory factory);
// The stage registered under `name`; the error lists the registered names.
std::unique_ptr<Stage> make_stage(const std::string& name, StageEnv& env);
std::vector<std::string> registered_stages();

// The built-in stages (trainer/stages/builtin_stages.cpp); make_stage calls it once.
void register_builtin_stages();

}  // namespace causvid::trainer
