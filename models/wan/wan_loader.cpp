// models/wan/wan_loader.cpp: see wan_loader.h.
#include "models/wan/wan_loader.h"

#include <filesystem>
#include <set>

#include "core/state_dict.h"
#include "core/tensor_io.h"

namespace causvid::models {

std::string resolve_weight_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  TORCH_CHECK(fs::exists(path, ec), path, ": no such file or directory (want a weight file or a ",
              "checkpoint directory holding model.pt)");
  if (fs::is_directory(path, ec)) {
    for (const char* name : {"model.pt", "diffusion_pytorch_model.safetensors"}) {
      const std::string f = (fs::path(path) / name).string();
      if (fs::exists(f, ec)) return f;
    }
    TORCH_CHECK(false, path, ": directory without model.pt (a complete checkpoint_model_<step> ",
                "directory) or diffusion_pytorch_model.safetensors (a Wan2.1 model folder)");
  }
  return path;
}

void load_wan_weights(WanModel& model, const std::string& path, const std::string& which) {
  const std::string file = resolve_weight_file(path);
  auto sd = core::load_weights(file);
  std::set<std::string> groups;
  bool has_which = false, has_model_prefix = false;
  for (const auto& kv : sd) {
    const auto& k = kv.first;
    if (k.rfind(which + ".", 0) == 0) has_which = true;
    if (k.rfind("model.", 0) == 0) has_model_prefix = true;
    auto dot = k.find('.');
    if (dot != std::string::npos) groups.insert(k.substr(0, dot));
  }
  core::LoadOptions opt;
  opt.source = file;
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
  }
  core::load_state_dict(*model, sd, opt);
}

}  // namespace causvid::models
