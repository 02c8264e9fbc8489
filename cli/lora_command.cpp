// cli/lora_command.cpp: `causvid lora merge | extract | inspect` (models/wan/lora.h): LoRA
// adapters of the Wan DiT in ComfyUI's or diffusers'/PEFT's layout.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "core/log.h"
#include "models/wan/lora.h"
#include "models/wan/wan_loader.h"
#include "trainer/model_export.h"

namespace causvid::cli {
namespace {

struct LoraMergeArgs {
  std::string base, out, which = "generator";
  std::vector<std::string> loras;
  trainer::ExportOptions opt;
};

int run_lora_merge(LoraMergeArgs a) {
  auto sd = models::load_wan_state_dict(a.base, a.which);
  models::merge_lora_specs(sd, a.loras);
  trainer::write_model(sd, a.out, a.opt);
  LOG_INFO("lora merge: wrote %s (%s)", a.out, a.opt.format);
  return 0;
}

struct LoraExtractArgs {
  std::string base, tuned, out, format = "comfyui", which = "generator";
  models::ExtractOptions opt;
  bool no_diffs = false;
};

int run_lora_extract(LoraExtractArgs a) {
  a.opt.diffs = !a.no_diffs;
  TORCH_CHECK(a.format == "comfyui" || a.opt.diffs == false, "--format peft cannot hold the "
              "non-LoRA differences (.diff / .diff_b): add --no-diffs or write comfyui");
  auto base = models::load_wan_state_dict(a.base, "generator");
  auto tuned = models::load_wan_state_dict(a.tuned, a.which);
  models::ExtractReport rep;
  auto lora = models::extract_lora(base, tuned, a.opt, &rep);
  lora.source = a.out;
  models::save_lora(a.out, lora, a.format);
  std::printf("lora extract: %zu low-rank modules at rank <= %lld, retained energy mean %.4f, "
              "min %.4f; %lld other changed tensors as .diff/.diff_b, %lld dropped -> %s\n",
              rep.modules.size(), static_cast<long long>(a.opt.rank), rep.mean_energy,
              rep.min_energy, static_cast<long long>(rep.diff_tensors),
              static_cast<long long>(rep.dropped_tensors), a.out.c_str());
  return 0;
}

struct LoraInspectArgs {
  std::string file, model;
};

int run_lora_inspect(const LoraInspectArgs& a) {
  auto lora = models::read_lora(a.file);
  std::map<std::pair<int64_t, double>, int64_t> by_rank_alpha;
  int64_t diffs = 0;
  for (const auto& m : lora.modules) {
    if (m.down.defined()) ++by_rank_alpha[{m.rank(), m.alpha}];
    diffs += m.diff.defined() + m.diff_b.defined();
  }
  std::printf("%s: %s layout, %zu modules\n", a.file.c_str(), lora.format.c_str(),
              lora.modules.size());
  for (const auto& [ra, n] : by_rank_alpha)
    std::printf("  %lld modules of rank %lld, alpha %g (factor %g)\n", static_cast<long long>(n),
                static_cast<long long>(ra.first), ra.second, ra.second / ra.first);
  if (diffs) std::printf("  %lld whole-tensor / bias deltas (.diff, .diff_b)\n", static_cast<long long>(diffs));
  if (!a.model.empty()) {
    models::check_lora(lora, models::load_wan_state_dict(a.model));
    std::printf("  fits %s\n", a.model.c_str());
  }
  return 0;
}

void add_export_flags(CLI::App& app, trainer::ExportOptions& o) {
  app.add_option("--format", o.format, "output layout: safetensors | causvid | diffusers | comfyui")
      ->check(CLI::IsMember({"causvid", "safetensors", "diffusers", "comfyui"}));
  app.add_option("--dtype", o.dtype, "weight dtype: bf16 | fp16 | fp32 | fp8_e4m3fn[_scaled] (comfyui)")
      ->check(CLI::IsMember({"bf16", "fp16", "fp32", "fp8_e4m3fn", "fp8_e4m3fn_scaled"}));
  app.add_option("--num-heads", o.num_heads, "diffusers config.json heads (default dim / 128)");
}

}  // namespace

void add_lora_commands(Commands& cmds) {
  CLI::App* lora = cmds.add_group("lora", "LoRA adapters: lora merge | extract | inspect");

  auto m = std::make_shared<LoraMergeArgs>();
  m->opt.format = "safetensors";
  CLI::App* app = cmds.add("merge", "Merge LoRA files into a model and write the merged model.",
                           [m] { return run_lora_merge(*m); }, lora);
  app->add_option("--base", m->base, "the model (any layout --checkpoint reads)")->required();
  add_repeated(*app, "--lora", m->loras, "LoRA file at SCALE (default 1); repeatable, in order")
      ->type_name("FILE[:SCALE]")
      ->required();
  app->add_option("--out", m->out, "output file (diffusers: folder)")->required();
  app->add_option("--which", m->which, "group of a model.pt: generator | generator_ema");
  add_export_flags(*app, m->opt);

  auto e = std::make_shared<LoraExtractArgs>();
  app = cmds.add("extract",
                 "The LoRA that turns BASE into TUNED: truncated SVD of each weight difference.",
                 [e] { return run_lora_extract(*e); }, lora);
  app->add_option("--base", e->base, "the base model")->required();
  app->add_option("--tuned", e->tuned, "the fine-tuned / distilled model")->required();
  app->add_option("--rank", e->opt.rank, "rank of each module's factors (default 32)");
  app->add_option("--out", e->out, "output LoRA file")->required();
  app->add_option("--format", e->format, "comfyui (default) | peft")
      ->check(CLI::IsMember({"comfyui", "peft"}));
  app->add_option("--targets", e->opt.targets, "regex over module names given low-rank factors "
                  "(default: the blocks' attention and FFN linears)");
  app->add_option("--which", e->which, "group of TUNED's model.pt: generator | generator_ema");
  app->add_flag("--no-diffs", e->no_diffs, "drop changed non-target tensors (modulation, norms, "
                "biases, embeddings) instead of writing them as .diff / .diff_b");

  auto i = std::make_shared<LoraInspectArgs>();
  app = cmds.add("inspect", "Print a LoRA file's layout, ranks and alphas; with --model, check it fits.",
                 [i] { return run_lora_inspect(*i); }, lora);
  app->add_option("FILE", i->file, "LoRA file")->required();
  app->add_option("--model", i->model, "a model to check the LoRA against");
}

}  // namespace causvid::cli
