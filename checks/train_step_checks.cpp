// checks/train_step_checks.cpp: fixture kind train_step (KINDS.train_step.md): one whole
// training step of CausVid's (train_distillation.py / train_ode.py Trainer.train_one_step) as
// our stage runs it. The stage is built by trainer::make_stage from meta.json "config", its
// models get the fixture's initial weights, the reference's random draws are replayed in order
// through core::ReplaySource (the same StageEnv::rng interface training draws from), one
// Stage::step runs, and the step's metrics and every weight after the update are compared.
// Models the reference leaves unchanged must stay bit-identical.
#include "checks/kinds.h"
#include "core/config.h"
#include "core/random.h"
#include "trainer/stage.h"

namespace causvid::checks {

namespace {

// The stage's one text encode is the negative prompt (CFG, text dropout); the fixture holds
// its embedding. Any other prompt is an error: the step's conditioning is in.cond.
class FixtureText : public models::TextConditioner {
 public:
  FixtureText(torch::Tensor uncond_1TE, std::string negative)
      : uncond_(std::move(uncond_1TE)), negative_(std::move(negative)) {}
  torch::Tensor encode(const std::vector<std::string>& prompts) override {
    for (const auto& p : prompts)
      TORCH_CHECK(p == negative_, "train_step: the step encoded the prompt '", p,
                  "'; the fixture holds only the negative prompt's embedding (in.uncond)");
    return uncond_.expand({static_cast<int64_t>(prompts.size()), -1, -1}).contiguous();
  }
  int64_t text_len() const override { return uncond_.size(1); }
  int64_t dim() const override { return uncond_.size(2); }
  torch::ScalarType output_dtype() const override { return torch::kFloat32; }

 private:
  torch::Tensor uncond_;
  std::string negative_;
};

// meta.json "config" (our config keys, CausVid's names) for the fixture's placement: bf16
// placements run with mixed_precision (bf16 compute, fp32 master weights, as CausVid's configs).
core::Config fixture_config(const Fixture& f) {
  TORCH_CHECK(f.meta.contains("config") && f.meta["config"].is_object(), f.dir,
              "/meta.json: missing object \"config\"");
  auto c = core::parse_config(f.meta["config"].dump(), f.dir + "/meta.json \"config\"");
  c.device = f.place.device.str();
  c.mixed_precision = f.place.dtype != torch::kFloat32;
  c.validate();
  return c;
}

std::vector<torch::Tensor> recorded_draws(const Fixture& f) {
  std::vector<torch::Tensor> draws;
  for (size_t k = 0; f.has("in.draw." + std::to_string(k)); ++k)
    draws.push_back(f.in("in.draw." + std::to_string(k)));
  return draws;
}

void load_initial_weights(const Fixture& f, trainer::Stage& stage) {
  for (auto& [role, model] : stage.models()) {
    auto sd = f.weights_with_prefix(role + ".");
    TORCH_CHECK(!sd.empty(), f.dir, "/weights.safetensors: no '", role,
                ".' weights for the stage's ", role);
    const auto own = model->sharded().module().named_parameters();
    for (const auto& kv : sd)
      TORCH_CHECK(own.contains(kv.first), f.dir, "/weights.safetensors: '", role, ".", kv.first,
                  "' is not a parameter of the stage's ", role);
    model->sharded().load_full_state_dict(sd);
  }
}

// Every weight after the step: out.<role>.<key> where the reference updated the model, else
// the initial value, bit for bit.
void compare_weights(const Fixture& f, FixtureReport& r, trainer::Stage& stage) {
  for (auto& [role, model] : stage.models()) {
    for (const auto& [key, value] : model->sharded().full_state_dict()) {
      const std::string out = "out." + role + "." + key;
      if (f.has(out)) {
        r.compare(out, value);
      } else if (!torch::equal(value.cpu(),  // a frozen model's shards are in the compute dtype
                               f.weights->tensor(role + "." + key).to(value.scalar_type()))) {
        r.fail(role + "." + key + ": changed by the step, but the reference leaves it unchanged");
      }
    }
  }
}

}  // namespace

void check_train_step(const Fixture& f, FixtureReport& r) {
  const auto cfg = fixture_config(f);
  core::DistOptions dopt;
  dopt.device = f.place.device.str();
  auto dist = core::DistContext::init(core::DistEnv{}, dopt);
  core::ReplaySource draws(recorded_draws(f), f.dir + " (in.draw.*)");
  FixtureText text(f.in("in.uncond").to(torch::kFloat32), cfg.negative_prompt);
  const auto& shape = cfg.image_or_video_shape;
  const std::vector<int64_t> frame_shape(shape.begin() + 1, shape.end());
  const auto seed = static_cast<uint64_t>(cfg.seed);
  trainer::UpdateRule updates(cfg);
  trainer::StageEnv env{cfg, dist, f.place.device, seed, draws, text, frame_shape, updates};
  auto stage = trainer::make_stage(cfg.distillation_loss, env);
  load_initial_weights(f, *stage);

  data::Batch batch;
  auto cond = f.in("in.cond").to(torch::kFloat32);
  batch.prompts.assign(cond.size(0), "(fixture prompt: in.cond)");
  if (f.has("in.latents")) batch.latents = f.in("in.latents");
  const auto metrics = stage->step({batch, cond, f.meta.value("step", int64_t{0})});
  if (draws.used() != draws.size())
    r.fail("the step made " + std::to_string(draws.used()) + " random draws; the reference made " +
           std::to_string(draws.size()));
  for (const auto& [name, value] : metrics)
    if (f.has("out.metric." + name))
      r.compare("out.metric." + name, torch::tensor(value, torch::kFloat64));
  compare_weights(f, r, *stage);
}

}  // namespace causvid::checks
