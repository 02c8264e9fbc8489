// checks/layout_checks.cpp: fixture kinds diffusers_wan_dit and comfyui_wan_dit
// (tests/fixtures/KINDS.layout_dit.md): Wan DiT weights in diffusers' and ComfyUI's
// layouts, loaded through the same path as --checkpoint / dit_path (models/wan/wan_loader.h);
// lora_wan_dit (KINDS.lora.md): LoRA files read and merged as `generate --lora` does.
#include <fstream>

#include "checks/kinds.h"
#include "core/state_dict.h"
#include "models/wan/lora.h"
#include "models/wan/wan_layouts.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_model.h"

namespace causvid::checks {

void check_diffusers_wan_dit(const Fixture& f, FixtureReport& r) {
  torch::NoGradGuard ng;
  const std::string folder = f.dir + "/" + f.meta.value("folder", std::string("model"));
  // The sizes come from the folder itself, as a user's --checkpoint folder gives them.
  const std::string cfg_file = models::resolve_weight_file(folder);
  const auto cfg_path =
      (std::filesystem::path(cfg_file).parent_path() / "config.json").string();
  std::ifstream in(cfg_path);
  TORCH_CHECK(in, f.dir, ": no ", cfg_path);
  auto cfg = models::wan_config_from_diffusers(nlohmann::json::parse(in), cfg_path);
  if (f.meta.contains("wan_config")) {
    auto want = models::WanConfig::from_json(f.meta["wan_config"]);
    TORCH_CHECK(cfg.to_json() == want.to_json(), f.dir, ": config.json gives ",
                cfg.to_json().dump(), ", meta.json's wan_config ", want.to_json().dump());
  }
  models::WanModel m(cfg);
  models::load_wan_weights(m, folder);
  f.to_place(*m);
  m->eval();
  r.compare("out.sample", m->forward(f.in("in.hidden_states"), f.in("in.timestep"),
                                     f.in("in.encoder_hidden_states")));
}

void check_comfyui_wan_dit(const Fixture& f, FixtureReport& r) {
  torch::NoGradGuard ng;
  models::WanModel m(models::WanConfig::from_json(f.meta["config"]));
  models::load_wan_weights(m, f.dir + "/" + f.meta.value("file", std::string("model.safetensors")));
  f.to_place(*m);
  m->eval();
  r.compare("out.out", m->forward(f.in("in.x"), f.in("in.t"), f.in("in.context")));
}

void check_lora_wan_dit(const Fixture& f, FixtureReport& r) {
  TORCH_CHECK(f.weights, f.dir, ": lora_wan_dit fixture has no weights.safetensors");
  torch::NoGradGuard ng;
  models::WanModel m(models::WanConfig::from_json(f.meta["config"]));
  auto run = [&](const core::TensorMap& sd) {
    core::LoadOptions opt;
    opt.source = f.weights->path();
    core::load_state_dict(*m, sd, opt);
    f.to_place(*m);
    m->eval();
    return m->forward(f.in("in.x"), f.in("in.t"), f.in("in.context"));
  };
  const auto base = f.weights->all();
  r.compare("out.base", run(base));
  auto lora = models::read_lora(f.dir + "/" + f.meta.value("lora_file", std::string("lora.safetensors")));
  if (f.meta.contains("lora_format"))
    TORCH_CHECK(lora.format == f.meta["lora_format"].get<std::string>(), f.dir, ": read as ",
                lora.format, ", meta says ", f.meta["lora_format"]);
  for (const auto& [key, scale] : {std::pair<std::string, double>{"out.lora", f.meta["scale"].get<double>()},
                                   {"out.lora_scale1", 1.0}}) {
    if (!f.has(key)) continue;
    auto sd = base;
    for (auto& kv : sd) kv.second = kv.second.clone();
    models::merge_lora(sd, lora, scale);
    r.compare(key, run(sd));
  }
}

}  // namespace causvid::checks
