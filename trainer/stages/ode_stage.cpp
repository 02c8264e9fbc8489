// trainer/stages/ode_stage.cpp: CausVid's ODE regression (causvid/ode_regression.py,
// train_ode.py): the (causal) generator maps a point of the teacher's ODE trajectory at a
// random index of the denoising step list (per frame block for causal_video) to the
// trajectory's clean end. Rows of data_path hold the trajectory [S, F, C, H, W].
#include <torch/torch.h>

#include "inference/step_list.h"
#include "losses/losses.h"
#include "trainer/stage.h"

namespace causvid::trainer {
namespace {

class OdeStage : public GeneratorStage {
 public:
  explicit OdeStage(StageEnv& env) : GeneratorStage(env) {}

  bool needs_latents() const override { return true; }

  void check_data(const data::TrainDataset& ds) const override {
    const auto& c = env_.cfg;
    const int64_t S = ds.latents(0).size(0);
    TORCH_CHECK(S == static_cast<int64_t>(c.denoising_step_list.size()), c.data_path,
                ": ODE rows hold ", S, " trajectory points, but denoising_step_list has ",
                c.denoising_step_list.size(), " entries");
  }

  std::map<std::string, double> step(const StepInput& in) override {
    const auto& c = env_.cfg;
    const int64_t F = env_.frame_shape[0];
    auto steps = inference::training_step_list(c);
    return generator_only_step(in, [&](const MicroBatch& mb) {
      auto index = losses::sample_ode_index(mb.cond.size(0), F, steps.size(0), c.generator_task,
                                            c.num_frame_per_block, env_.rng);
      return losses::ode_loss(gen_->wrap(), mb.batch->latents, index, steps, mb.cond).loss;
    });
  }
};

}  // namespace

void register_ode_stage() {
  register_stage("ode", [](StageEnv& env) { return std::make_unique<OdeStage>(env); });
}

}  // namespace causvid::trainer
