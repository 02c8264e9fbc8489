// checks/self_forcing_checks.cpp: fixture kind self_forcing_rollout
// (KINDS.self_forcing_rollout.md): Self-Forcing's training rollout
// (SelfForcingTrainingPipeline.inference_with_trajectory) as inference/self_forcing_rollout.h
// runs it: the reference's draws replayed in order (exit steps, re-noising, context noise),
// the video and the exit step's timestep range compared, then the gradient of
// (video * probe).sum() with respect to every generator weight, which shows which calls
// carried gradient (a weight the reference gives no gradient must get none here).
#include "checks/kinds.h"
#include "core/config.h"
#include "core/random.h"
#include "core/state_dict.h"
#include "inference/self_forcing_rollout.h"
#include "inference/step_list.h"
#include "models/wan/wan_model.h"
#include "models/wan/wan_wrapper.h"

namespace causvid::checks {

namespace {

// meta.json "config" applied key by key over the defaults (the rollout reads a few keys; a
// fixture config need not be a whole training config).
core::Config rollout_config(const Fixture& f) {
  TORCH_CHECK(f.meta.contains("config") && f.meta["config"].is_object(), f.dir,
              "/meta.json: missing object \"config\"");
  core::Config c;
  c.source = f.dir + "/meta.json \"config\"";
  std::vector<std::string> sets;
  for (const auto& [k, v] : f.meta["config"].items()) sets.push_back(k + "=" + v.dump());
  core::apply_overrides(c, sets);
  return c;
}

}  // namespace

void check_self_forcing_rollout(const Fixture& f, FixtureReport& r) {
  const auto c = rollout_config(f);
  models::WanModel m(models::WanConfig::from_json(f.meta["model"]));
  core::LoadOptions lo;
  lo.select = "generator.";
  lo.source = f.dir + "/weights.safetensors";
  core::load_state_dict(*m, f.weights->all(), lo);
  f.to_place(*m);
  models::WanDiffusionWrapper g(m, /*causal=*/true, c.num_frame_per_block,
                                c.generator_scheduler_shift());

  inference::RolloutOptions o;
  o.step_list = inference::sampling_step_list(c);
  o.num_frame_per_block = c.num_frame_per_block;
  o.same_step_across_blocks = c.same_step_across_blocks;
  o.context_noise = c.context_noise;
  TORCH_CHECK(c.image_or_video_shape.size() == 5, c.source, ": want image_or_video_shape");
  o.grad_frames = c.image_or_video_shape[1];

  std::vector<torch::Tensor> recorded;
  for (size_t k = 0; f.has("in.draw." + std::to_string(k)); ++k)
    recorded.push_back(f.in("in.draw." + std::to_string(k)));
  core::ReplaySource draws(recorded, f.dir + " (in.draw.*)");
  auto noise = f.in("in.noise").to(f.place.dtype);
  auto cond = f.in("in.cond").to(f.place.dtype);
  torch::Tensor initial;
  if (f.has("in.initial_latent")) initial = f.in("in.initial_latent").to(f.place.dtype);
  const int64_t S = static_cast<int64_t>(o.step_list.size());
  auto exits = inference::draw_exit_steps(draws, noise.size(1) / o.num_frame_per_block, S,
                                          c.last_step_only);
  auto res = inference::self_forcing_rollout(g, noise, cond, initial, exits, draws, o);
  if (draws.used() != draws.size())
    r.fail("the rollout made " + std::to_string(draws.used()) +
           " random draws; the reference made " + std::to_string(draws.size()));
  r.compare("out.video", res.video);
  r.compare("out.timestep_from", torch::tensor(res.timestep_from.value_or(-1), torch::kLong));
  r.compare("out.timestep_to", torch::tensor(res.timestep_to.value_or(-1), torch::kLong));

  (res.video.to(torch::kFloat32) * f.in("in.probe")).sum().backward();
  for (const auto& p : m->named_parameters()) {
    const std::string out = "out.grad." + p.key();
    if (!f.has(out)) {
      r.fail(p.key() + ": no " + out + " in the fixture");
      continue;
    }
    const auto& grad = p.value().grad();
    r.compare(out, grad.defined() ? grad : torch::zeros_like(p.value()));
  }
}

}  // namespace causvid::checks
