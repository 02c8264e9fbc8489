// cli/toy_probe_command.cpp: `causvid toy probe`, diagnostics of a toy teacher (toy/probes.h):
// the text probe (does the conditioning separate size, colour, shape and direction?) and,
// with --checkpoint, the coupling probe (does a token's output depend on other tokens?).
#include <cstdio>

#include "cli/commands.h"
#include "core/config.h"
#include "data/text_from_config.h"
#include "models/wan/presets.h"
#include "models/wan/wan_loader.h"
#include "toy/probes.h"

namespace causvid::cli {

namespace {

struct ToyProbeArgs {
  ConfigArgs config{"configs/toy/teacher.yaml", {}};
  std::string checkpoint, which = "generator";
  std::string prompt = "a large red square moving right";
  std::vector<double> timesteps = {900, 700, 500, 300, 100};
  int64_t seed = 0;
};

int run_toy_probe(const ToyProbeArgs& a) {
  auto cfg = core::load_config(a.config.path, a.config.sets);
  auto text = data::text_conditioner_from_config(cfg);
  std::printf("== text probe (%s) ==\n%s", cfg.text_encoder_path.c_str(),
              toy::format_text_probe(toy::text_probe(*text)).c_str());
  if (a.checkpoint.empty()) return 0;
  models::WanModel net(models::wan_config(cfg));
  models::load_wan_weights(net, a.checkpoint, a.which);
  net->eval();
  toy::WorldSpec spec;
  spec.frames = cfg.image_or_video_shape.at(1);
  spec.height = cfg.image_or_video_shape.at(3);
  spec.width = cfg.image_or_video_shape.at(4);
  auto ctx = text->encode({a.prompt}).to(torch::kFloat32);
  auto rows = toy::coupling_probe(net, ctx, a.prompt, spec, a.timesteps, a.seed);
  std::printf("\n== coupling probe (%s, '%s'): mean |d flow| per token ==\n%s",
              a.checkpoint.c_str(), a.prompt.c_str(), toy::format_coupling_probe(rows).c_str());
  return 0;
}

}  // namespace

void add_toy_probe_command(Commands& cmds, CLI::App* toy) {
  auto p = std::make_shared<ToyProbeArgs>();
  CLI::App* app = cmds.add("probe",
                           "Diagnose a toy teacher: text conditioning per attribute and, with "
                           "--checkpoint, how much a token's output depends on other tokens.",
                           [p] { return run_toy_probe(*p); }, toy);
  add_config_options(*app, p->config, "training config (model size, text encoder)");
  app->add_option("--checkpoint", p->checkpoint, "weights: safetensors, model.pt or a checkpoint dir");
  app->add_option("--which", p->which, "group in model.pt: generator | generator_ema | critic");
  app->add_option("--prompt", p->prompt, "the probed clip's prompt");
  app->add_option("--t", p->timesteps, "timesteps to probe at (0..1000)")->delimiter(',');
  app->add_option("--seed", p->seed, "the probed clip's start position and noise");
}

}  // namespace causvid::cli
