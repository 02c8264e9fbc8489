// models/wan/wan_loader.cpp: see wan_loader.h.
#include "models/wan/wan_loader.h"

#include <filesystem>
#include <set>

#include "core/state_dict.h"
#include "core/tensor_io.h"
#include "models/wan/wan_layouts.h"

namespace causvid::models {

std::string resolve_weight_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  TORCH_CHECK(fs::exists(path, ec), path, ": no such file or directory (want a weight file, a ",
              "checkpoint directory holding model.pt, or a diffusers model folder)");
  if (!fs::is_directory(path, ec)) return path;
  for (const char* name : {"model.pt", "diffusion_pytorch_model.safetensors.index.json",
                           "diffusion_pytorch_model.safetensors"}) {  // the index first, as diffusers
    const std::string f = (fs::path(path) / name).string();
    if (fs::exists(f, ec)) return f;
  }
  // A diffusers pipeline folder (model_index.json beside transformer/, vae/, text_encoder/).
  const auto sub = fs::path(path) / "transformer";
  if (fs::is_directory(sub, ec)) return resolve_weight_file(sub.string());
  TORCH_CHECK(false, path, ": directory without model.pt (a complete checkpoint_model_<step> ",
              "directory), diffusion_pytorch_model.safetensors[.index.json] (a Wan2.1 or ",
              "diffusers transformer folder) or transformer/ (a diffusers pipeline folder)");
}

core::TensorMap load_wan_state_dict(const std::string& path, const std::string& which,
                                    std::string* source) {
  const std::string file = resolve_weight_file(path);
  if (source) *source = file;
  auto sd = core::load_weights(file);
  std::set<std::string> groups;
  bool has_which = false, has_model_prefix = false;
  for (const auto& kv : sd) {
    const auto& k = kv.first;
    if (k.rfind(which + ".", 0) == 0) has_which = true;
    if (k.rfind("model.", 0) == 0 && k.rfind("model.diffusion_model.", 0) != 0)
      has_model_prefix = true;
    auto dot = k.find('.');
    if (dot != std::string::npos) groups.insert(k.substr(0, dot));
  }
  core::LoadOptions opt;
  if (has_which) {
    opt.select = which + ".";
    opt.strip = "model.";
  } else if (has_model_prefix) {
    opt.strip = "model.";
  } else {
    // Plain keys: refuse a nested file that lacks the requested group.
    for (const char* g : {"generator", "critic", "generator_ema", "fake_score"})
      TORCH_CHECK(!groups.count(g), file, ": no '", which, "' weights in this file (it holds '", g,
                  "' ...); pick another group");
    // Name the asked one: generator -> generator_lora, generator_ema -> generator_lora_ema.
    const auto ema = which.size() > 4 && which.compare(which.size() - 4, 4, "_ema") == 0;
    const std::string asked = ema ? which.substr(0, which.size() - 4) + "_lora_ema" : which + "_lora";
    if (groups.count(asked)) groups = {asked};
    for (const auto& g : groups)
      TORCH_CHECK(g.find("_lora") == std::string::npos, file,
                  ": holds the LoRA adapters '", g, "' of a LoRA run, not a model: use the base "
                  "model with --lora <checkpoint dir>/", g, ".safetensors (or causvid lora merge)");
  }
  return wan_dit_to_ours(core::map_keys(sd, opt), file);
}

void load_wan_weights(WanModel& model, const std::string& path, const std::string& which) {
  std::string file;
  auto sd = load_wan_state_dict(path, which, &file);
  core::LoadOptions opt;
  opt.source = file;
  core::load_state_dict(*model, sd, opt);
}

}  // namespace causvid::models
