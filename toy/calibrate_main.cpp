// toy/calibrate_main.cpp: `causvid toy calibrate`, a minimal flow-matching loop used to size
// the toy world and the toy DiT before (and independently of) the stage trainers: in-memory
// toy data, the toy text encoder, WanModel from the config preset, uniform timesteps on the
// wan_training(shift) grid, MSE on the flow (noise - x0), AdamW, and every --eval-every steps
// a conditional Euler sample (no CFG) scored with the toy metric. Not a trainer: `causvid
// train --config configs/toy/teacher.yaml` is; this only measures what the world needs.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "core/args.h"
#include "core/log.h"
#include "inference/causal_pipeline.h"
#include "models/wan/wan_wrapper.h"
#include "toy/metric.h"
#include "toy/text_encoder.h"

namespace causvid::cli {

int toy_calibrate_main(int argc, char** argv) {
  core::ArgParser p("causvid toy calibrate", "Minimal flow-matching fit of the toy world (sizing).");
  auto& steps_s = p.flag("--steps", "2000", "training steps");
  auto& batch_s = p.flag("--batch", "16", "batch size");
  auto& lr_s = p.flag("--lr", "1e-3", "AdamW learning rate");
  auto& shift_s = p.flag("--shift", "3", "training grid shift");
  auto& sshift_s = p.flag("--sample-shift", "3", "sampling grid shift");
  auto& sample_steps_s = p.flag("--sample-steps", "20", "Euler steps of the eval sample");
  auto& eval_every_s = p.flag("--eval-every", "500", "evaluate every N steps");
  auto& eval_num_s = p.flag("--eval-num", "24", "eval videos");
  auto& preset = p.flag("--preset", "toy", "model preset");
  auto& dim_s = p.flag("--dim", "0", "override dim");
  auto& ffn_s = p.flag("--ffn", "0", "override ffn_dim");
  auto& layers_s = p.flag("--layers", "0", "override num_layers");
  auto& heads_s = p.flag("--heads", "0", "override num_heads");
  auto& frames_s = p.flag("--frames", "6", "latent frames");
  auto& size_s = p.flag("--size", "12", "latent height = width");
  auto& speed_s = p.flag("--speed", "1", "pixels per frame");
  auto& num_s = p.flag("--num", "4096", "training videos");
  auto& align_s = p.flag("--align", "2", "start positions multiple of this");
  auto& seed_s = p.flag("--seed", "0", "seed");
  auto& preview = p.flag("--preview", "", "PNG of the last eval sample");
  if (!p.parse(argc, argv)) return p.exit_code();
  auto I = [](const std::string& f, const std::string& v) { return core::ArgParser::to_int(f, v); };
  const int64_t steps = I("--steps", steps_s), B = I("--batch", batch_s);
  const int64_t eval_every = I("--eval-every", eval_every_s), eval_num = I("--eval-num", eval_num_s);
  const double lr = core::ArgParser::to_double("--lr", lr_s);
  toy::WorldSpec spec;
  spec.frames = I("--frames", frames_s);
  spec.height = spec.width = I("--size", size_s);
  spec.speed = I("--speed", speed_s);
  spec.align = I("--align", align_s);
  const int64_t seed = I("--seed", seed_s);

  auto wc = models::WanConfig::preset(preset);
  if (I("--dim", dim_s) > 0) wc.dim = I("--dim", dim_s);
  if (I("--ffn", ffn_s) > 0) wc.ffn_dim = I("--ffn", ffn_s);
  if (I("--layers", layers_s) > 0) wc.num_layers = I("--layers", layers_s);
  if (I("--heads", heads_s) > 0) wc.num_heads = I("--heads", heads_s);
  models::WanModel net(wc);
  net->init_weights(seed);
  models::WanDiffusionWrapper w(net, false);
  LOG_INFO("calibrate: %s, %.3fM params, world %dx%dx%d speed %d, batch %d", wc.to_json().dump(),
           wc.num_params() / 1e6, spec.frames, spec.height, spec.width, spec.speed, B);

  auto data = toy::generate(I("--num", num_s), seed, spec);
  toy::ToyTextEncoder text(wc.text_len);
  auto ctx_all = text.encode(data.prompts);
  std::vector<std::string> eval_prompts;
  {
    auto attrs = toy::all_attributes();
    for (int64_t i = 0; i < eval_num; ++i)
      eval_prompts.push_back(toy::make_prompt(attrs[(i * 37) % attrs.size()]));
  }
  auto eval_ctx = text.encode(eval_prompts);

  auto grid = models::FlowMatchScheduler::wan_training(core::ArgParser::to_double("--shift", shift_s));
  torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(lr).weight_decay(0.01));
  auto gen = at::detail::createCPUGenerator(seed + 1);
  const int64_t N = data.latents.size(0), F = spec.frames;
  auto t_start = std::chrono::steady_clock::now();
  double loss_acc = 0;
  int64_t loss_n = 0;
  for (int64_t step = 1; step <= steps; ++step) {
    net->train();
    auto idx = at::randint(N, {B}, gen, torch::TensorOptions().dtype(torch::kInt64));
    auto x0 = data.latents.index_select(0, idx);
    auto ctx = ctx_all.index_select(0, idx);
    auto tidx = at::randint(1000, {B}, gen, torch::TensorOptions().dtype(torch::kInt64));
    auto t_BF = grid.timesteps.index_select(0, tidx).unsqueeze(1).expand({B, F}).contiguous();
    auto noise = at::randn(x0.sizes(), gen, x0.options());
    auto xt = grid.add_noise(x0, noise, t_BF);
    auto pred = w.flow(xt, t_BF, ctx);
    auto loss = (pred - (noise - x0)).pow(2).mean();
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(net->parameters(), 10.0);
    // linear warmup over the first 100 steps
    for (auto& g : opt.param_groups())
      static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr * std::min(1.0, step / 100.0));
    opt.step();
    loss_acc += loss.item<double>();
    ++loss_n;
    if (step % eval_every == 0 || step == steps) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      const auto ev0 = std::chrono::steady_clock::now();
      net->eval();
      torch::Tensor lat;
      {
        torch::NoGradGuard ng;
        auto sgrid = models::FlowMatchScheduler::wan_sampling(
            I("--sample-steps", sample_steps_s), core::ArgParser::to_double("--sample-shift", sshift_s));
        lat = at::randn({eval_num, F, toy::kChannels, spec.height, spec.width}, gen, torch::TensorOptions());
        for (int64_t i = 0; i < sgrid.timesteps.size(0); ++i) {
          auto t = sgrid.timesteps[i].expand({eval_num, F}).contiguous();
          auto x0p = w.forward(lat, t, eval_ctx);
          auto tf = t.flatten();
          auto flow = sgrid.flow_from_x0(x0p.flatten(0, 1), lat.flatten(0, 1), tf);
          lat = sgrid.step(flow, tf, lat.flatten(0, 1)).view(lat.sizes());
        }
      }
      auto s = toy::evaluate(lat, eval_prompts, spec);
      std::printf("step %5lld  %.1f s (%.3f s/step)  loss %.4f  | %s\n", (long long)step, el,
                  el / step, loss_acc / loss_n, toy::format_set_score("teacher", s).c_str());
      std::fflush(stdout);
      loss_acc = 0;
      loss_n = 0;
      if (!preview.empty()) toy::write_preview_png(preview, lat);
      t_start += std::chrono::steady_clock::now() - ev0;  // eval time is not training time
    }
  }
  return 0;
}

}  // namespace causvid::cli
