// tests/trainer/tiny_world.h: the tiny training world the trainer tests share (CPU and GPU):
// a prompt cache (umT5 dim 32, text_len 16), a latent LMDB [8, 3, 4, 8, 8], an ODE LMDB
// [8, 4, 3, 4, 8, 8] and a prompt file in a temp dir, and configs/<file> pointed at them.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"
#include "core/fs.h"
#include "data/array_lmdb.h"
#include "core/safetensors.h"
#include "core/state_dict.h"
#include "data/prompt_cache.h"
#include "models/vae/wan_vae.h"
#include "models/t5/tokenizer.h"
#include "models/t5/umt5.h"
#include "tests/test_util.h"

namespace causvid::testing {

inline const std::vector<std::string> kPrompts = {"a red square", "a blue disc", "a green cross",
                                           "a white dot", "a cat", "a dog", "low quality, static",
                                           "a red disc"};

// A temp dir with a tiny prompt cache (umT5 dim 32, text_len 16), a latent LMDB
// [8, 3, 4, 8, 8] and an ODE LMDB [8, 4, 3, 4, 8, 8], plus a prompt file and a tiny VAE
// (dim 4, z_dim 4).
struct World {
  TempDir dir;
  World() {
    torch::manual_seed(3);
    auto tok = std::shared_ptr<models::UMT5Tokenizer>(models::UMT5Tokenizer::bytes(16));
    models::UMT5Encoder enc(models::UMT5Config::tiny(tok->vocab_size()));
    enc->eval();
    models::UMT5TextEncoder te(enc, tok);
    data::embed_prompts(te, kPrompts, cache(), torch::kFloat32, 4, false, "tiny");
    auto lat = torch::randn({8, 3, 4, 8, 8});
    {
      data::ArrayLmdbWriter w(latents());
      w.put_tensor_rows("latents", 0, lat);
      w.put_string_rows("prompts", 0, kPrompts);
      w.finish({{"latents", {8, 3, 4, 8, 8}}, {"prompts", {8}}});
    }
    {
      data::ArrayLmdbWriter w(ode());
      w.put_tensor_rows("latents", 0, torch::randn({8, 4, 3, 4, 8, 8}));
      w.put_string_rows("prompts", 0, kPrompts);
      w.finish({{"latents", {8, 4, 3, 4, 8, 8}}, {"prompts", {8}}});
    }
    {  // a tiny Wan VAE (dim 4, z_dim 4) with its latent statistics
      models::WanVAEConfig vc;
      vc.dim = vc.z_dim = 4;
      models::WanVAEWrapper v(vc, torch::zeros({4}), torch::ones({4}));
      auto sd = core::state_dict(*v.model());
      sd["latent_mean"] = torch::zeros({4});
      sd["latent_std"] = torch::ones({4});
      core::save_safetensors(vae(), sd);
    }
    std::string txt;
    for (const auto& p : kPrompts) txt += p + "\n";
    core::write_file_atomic(prompts(), txt);
  }
  std::string cache() const { return dir.file("cache"); }
  std::string latents() const { return dir.file("latents_lmdb"); }
  std::string ode() const { return dir.file("ode_lmdb"); }
  std::string prompts() const { return dir.file("prompts.txt"); }
  std::string vae() const { return dir.file("vae.safetensors"); }
  std::string out(const std::string& name) const { return dir.file(name); }

  // configs/<file> with the tiny test world's paths and sizes.
  core::Config config(const std::string& file, const std::string& out_name,
                      std::vector<std::string> extra = {}) const {
    std::vector<std::string> o = {"prompt_cache=" + cache(), "model_text_dim=32",
                                  "dit_path=random", "output_path=" + out(out_name),
                                  "num_workers=0", "log_iters=1"};
    o.insert(o.end(), extra.begin(), extra.end());
    return core::load_config(source_dir() + "/configs/" + file, o);
  }
};

inline const World& world() {
  static World w;
  return w;
}

}  // namespace causvid::testing
