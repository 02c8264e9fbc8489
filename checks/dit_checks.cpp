// checks/dit_checks.cpp: fixture kinds wan_dit, causal_wan_train, causal_wan_kv and
// flow_match (KINDS.dit.md, KINDS.sched_loss.md).
#include "checks/kinds.h"
#include "core/state_dict.h"
#include "models/wan/flow_match.h"
#include "models/wan/wan_model.h"

namespace causvid::checks {

using models::WanConfig;
using models::WanModel;

namespace {

WanModel build_model(const Fixture& f, const nlohmann::json& cfg, const std::string& prefix) {
  WanModel m(WanConfig::from_json(cfg));
  core::LoadOptions opt;
  opt.select = prefix;
  opt.source = f.dir + "/weights.safetensors";
  core::load_state_dict(*m, f.weights->all(), opt);
  f.to_place(*m);
  m->eval();
  return m;
}

}  // namespace

void check_wan_dit(const Fixture& f, FixtureReport& r) {
  torch::NoGradGuard ng;
  auto m = build_model(f, f.meta["config"], "");
  r.compare("out.y", m->forward(f.in("in.x"), f.in("in.t"), f.in("in.context"),
                                f.meta.value("seq_len", int64_t(-1))));
}

void check_causal_wan_train(const Fixture& f, FixtureReport& r) {
  torch::NoGradGuard ng;
  auto m = build_model(f, f.meta["config"], "");
  r.compare("out.y", m->forward_causal(f.in("in.x"), f.in("in.t"), f.in("in.context"),
                                       f.meta["num_frame_per_block"].get<int64_t>()));
}

void check_causal_wan_kv(const Fixture& f, FixtureReport& r) {
  torch::NoGradGuard ng;
  auto m = build_model(f, f.meta["config"], "");
  auto ctx = f.in("in.context");
  const int64_t frame_seqlen = f.meta["frame_seqlen"].get<int64_t>();
  const int64_t cache_tokens = f.meta["kv_cache_size"].get<int64_t>();
  TORCH_CHECK(cache_tokens % frame_seqlen == 0, f.dir, ": kv_cache_size not whole frames");
  models::KvCache cache(
      m->kv_cache_options(ctx.size(0), frame_seqlen, cache_tokens / frame_seqlen));
  models::CrossAttnCache xcache;
  for (const auto& call : f.meta["calls"]) {
    const int64_t k = call["index"].get<int64_t>();
    const std::string p = "call" + std::to_string(k);
    auto y = m->forward_cached(f.in("in." + p + ".x"), f.in("in." + p + ".t"), ctx, cache, xcache,
                               call["current_start"].get<int64_t>());
    r.compare("out." + p + ".y", y);
  }
}

void check_flow_match(const Fixture& f, FixtureReport& r) {
  using models::FlowMatchOptions;
  using models::FlowMatchScheduler;
  const auto& cfg = f.meta["config"];
  auto grid = [&](const std::string& name) {
    const auto& g = cfg[name];
    FlowMatchOptions o;
    o.shift = g["shift"].get<double>();
    o.sigma_min = g["sigma_min"].get<double>();
    o.sigma_max = g.value("sigma_max", 1.0);
    o.extra_one_step = g["extra_one_step"].get<bool>();
    o.num_train_timesteps = g.value("num_train_timesteps", int64_t(1000));
    FlowMatchScheduler s(o, g["num_inference_steps"].get<int64_t>());
    s.set_timesteps(g["num_inference_steps"].get<int64_t>(), g.value("denoising_strength", 1.0),
                    g["training"].get<bool>());
    return s;
  };
  for (const std::string name : {"train", "sample50", "alt"}) {
    auto s = grid(name);
    r.compare("out." + name + ".sigmas", s.sigmas);
    r.compare("out." + name + ".timesteps", s.timesteps);
    if (f.has("out." + name + ".linear_timesteps_weights"))
      r.compare("out." + name + ".linear_timesteps_weights", s.linear_timesteps_weights);
  }
  auto g_of = [&](const std::string& op) { return grid(cfg[op].get<std::string>()); };
  {
    auto s = g_of("add_noise");
    auto t = f.in("in.add_noise.timestep");
    r.compare("out.add_noise.sample",
              s.add_noise(f.in("in.add_noise.x"), f.in("in.add_noise.noise"), t));
    r.compare("out.add_noise.sigma", s.sigma_at(t));
    r.compare("out.add_noise.timestep_id", s.lookup(t));
  }
  for (const std::string op : {"step_a", "step_b"}) {
    auto s = g_of(op);
    r.compare("out." + op + ".prev_sample",
              s.step(f.in("in." + op + ".model_output"), f.in("in." + op + ".timestep"),
                     f.in("in." + op + ".sample")));
  }
  {
    auto s = g_of("conv");
    auto t = f.in("in.conv.timestep");
    r.compare("out.conv.flow_from_x0", s.flow_from_x0(f.in("in.conv.x0"), f.in("in.conv.xt"), t));
    r.compare("out.conv.x0_from_flow",
              s.x0_from_flow(f.in("in.conv.flow"), f.in("in.conv.xt"), t));
  }
  {
    auto s = g_of("conv50");
    r.compare("out.conv50.flow_from_x0",
              s.flow_from_x0(f.in("in.conv50.x0"), f.in("in.conv50.xt"),
                             f.in("in.conv50.timestep")));
  }
  auto train = grid("train");
  for (size_t k = 0; k < cfg["warp_lists"].size(); ++k) {
    const std::string p = "warp" + std::to_string(k);
    r.compare("out." + p + ".denoising_step_list",
              models::warp_denoising_steps(f.in("in." + p + ".denoising_step_list"), train));
  }
  {
    const auto& ts = cfg["tshift"];
    auto t = models::shift_timestep(f.in("in.tshift.raw_timestep"),
                                    ts["timestep_shift"].get<double>(),
                                    ts["min_step"].get<double>(), ts["max_step"].get<double>(),
                                    ts["num_train_timestep"].get<int64_t>());
    r.compare("out.tshift.timestep", t);
    r.compare("out.tshift.sigma", train.sigma_at(t));
  }
}

}  // namespace causvid::checks
