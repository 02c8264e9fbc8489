// checks/loss_checks.cpp: fixture kinds dmd_loss, critic_loss, ode_loss, teacher_sampling
// (KINDS.sched_loss.md).
#include "checks/kinds.h"
#include "core/state_dict.h"
#include "inference/causal_pipeline.h"
#include "losses/losses.h"

namespace causvid::checks {

namespace {

models::WanDiffusionWrapper load_role(const Fixture& f, const std::string& role) {
  models::WanModel m(models::WanConfig::from_json(f.meta["config"]["model"]));
  core::LoadOptions opt;
  opt.select = role + ".";
  opt.source = f.dir + "/weights.safetensors";
  core::load_state_dict(*m, f.weights->all(), opt);
  f.to_place(*m);
  return models::WanDiffusionWrapper(m, /*causal=*/false);
}

void compare_param_grads(const Fixture& f, FixtureReport& r, models::WanModel& m) {
  for (auto& p : m->named_parameters()) {
    auto g = p.value().grad();
    r.compare("out.grad." + p.key(), g.defined() ? g : torch::zeros_like(p.value()));
  }
}

}  // namespace

void check_dmd_loss(const Fixture& f, FixtureReport& r) {
  auto real = load_role(f, "real_score");
  auto fake = load_role(f, "fake_score");
  const auto& cfg = f.meta["config"];
  TORCH_CHECK(cfg.value("task_type", std::string("bidirectional_video")) == "bidirectional_video",
              f.dir, ": only bidirectional dmd_loss fixtures are defined");
  // The raw draw, processed, warped and clamped, must give the stored timestep.
  auto t = losses::process_timestep(f.in("in.raw_timestep"), "bidirectional_video", 1);
  t = models::shift_timestep(t, cfg["timestep_shift"].get<double>(), cfg["min_step"].get<double>(),
                             cfg["max_step"].get<double>(), cfg["num_train_timestep"].get<int64_t>());
  if (!torch::allclose(t, f.in("in.timestep"), 1e-5, 1e-4))
    r.fail("warp of in.raw_timestep does not give in.timestep");
  auto x0 = f.in("in.x0").set_requires_grad(true);
  losses::DmdOptions opts;
  opts.real_guidance_scale = cfg["real_guidance_scale"].get<double>();
  opts.normalization = cfg.value("normalization", true);
  auto out = losses::dmd_loss(real, fake, x0, f.in("in.timestep"), f.in("in.noise"),
                              f.in("in.cond"), f.in("in.uncond"), opts);
  for (const auto& k : {"noisy", "pred_fake_image", "pred_real_cond", "pred_real_uncond",
                        "pred_real_image", "grad"})
    r.compare(std::string("out.") + k, out.tensors.at(k));
  r.compare("out.loss", out.loss);
  out.loss.backward();
  r.compare("out.grad_x0", x0.grad());
}

void check_critic_loss(const Fixture& f, FixtureReport& r) {
  auto fake = load_role(f, "fake_score");
  auto out = losses::critic_loss(fake, f.in("in.x0"), f.in("in.timestep"), f.in("in.noise"),
                                 f.in("in.cond"), "flow");
  for (const auto& k : {"noisy", "pred_fake_image", "flow_pred"})
    r.compare(std::string("out.") + k, out.tensors.at(k));
  r.compare("out.loss", out.loss);
  out.loss.backward();
  compare_param_grads(f, r, fake.model());
}

void check_ode_loss(const Fixture& f, FixtureReport& r) {
  auto gen = load_role(f, "generator");
  const auto& cfg = f.meta["config"];
  auto idx = losses::process_timestep(f.in("in.raw_index"),
                                      cfg.value("generator_task", std::string("bidirectional_video")), 1);
  if (!torch::equal(idx, f.in("in.index"))) r.fail("processing in.raw_index does not give in.index");
  auto out = losses::ode_loss(gen, f.in("in.ode_latent"), f.in("in.index"),
                              f.in("in.denoising_step_list"), f.in("in.cond"));
  for (const auto& k : {"noisy_input", "timestep", "pred"})
    r.compare(std::string("out.") + k, out.tensors.at(k));
  r.compare("out.loss", out.loss);
  out.loss.backward();
  compare_param_grads(f, r, gen.model());
}

void check_teacher_sampling(const Fixture& f, FixtureReport& r) {
  torch::NoGradGuard ng;
  auto teacher = load_role(f, "real_score");
  const auto& cfg = f.meta["config"];
  const auto& sc = cfg["sampling_scheduler"];
  auto tr = inference::sample_teacher(teacher, f.in("in.noise"), f.in("in.cond"), f.in("in.uncond"),
                                      cfg["num_inference_steps"].get<int64_t>(),
                                      cfg["guidance_scale"].get<double>(),
                                      sc["shift"].get<double>(), /*keep_details=*/true);
  r.compare("out.trajectory", tr.trajectory);
  std::vector<int64_t> kept;
  const int64_t n = tr.trajectory.size(1);
  for (const auto& k : cfg["kept_indices"]) {
    int64_t i = k.get<int64_t>();
    kept.push_back(i < 0 ? n + i : i);
  }
  r.compare("out.kept", tr.trajectory.index_select(1, torch::tensor(kept)));
  r.compare("out.timesteps", tr.timesteps);
  r.compare("out.sigmas", tr.sigmas);
  r.compare("out.x0_cond", tr.x0_cond);
  r.compare("out.x0_uncond", tr.x0_uncond);
  r.compare("out.flow_pred", tr.flow);
}

}  // namespace causvid::checks
