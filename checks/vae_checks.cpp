// checks/vae_checks.cpp: fixture kind `wan_vae` (../shared/fixtures/KINDS.vae_t5.md): WanVAE_
// encode / decode with [mean, 1/std] as CausVid's WanVAEWrapper calls them
// (causvid/models/wan/wan_base/modules/vae.py, causvid/models/wan/wan_wrapper.py).
// out.latent goes through WanVAEWrapper::encode_to_latent and out.recon through
// decode_to_pixel (layout [B,F,C,H,W], permuted back), out.recon_raw through WanVAE::decode.
#include "checks/kinds.h"
#include "models/vae/wan_vae.h"

namespace causvid::checks {

void check_wan_vae(const Fixture& f, FixtureReport& r) {
  TORCH_CHECK(f.weights, f.dir, ": wan_vae fixture has no weights.safetensors");
  TORCH_CHECK(f.meta.contains("config"), f.dir, "/meta.json: no \"config\"");
  auto cfg = models::WanVAEConfig::from_json(f.meta.at("config"));
  models::WanVAEWrapper vae(cfg, f.in("in.scale_mean"), f.in("in.scale_std"));
  vae.load(f.weights->all(), f.weights->path());
  vae.to(f.place.device, f.place.dtype);

  bool do_encode = false;
  if (f.meta.contains("ops"))
    for (const auto& op : f.meta.at("ops")) do_encode |= op.get<std::string>() == "encode";
  if (do_encode) {
    auto lat_BFCHW = vae.encode_to_latent(f.in("in.video"));
    r.compare("out.latent", lat_BFCHW.permute({0, 2, 1, 3, 4}));
  }
  auto latent = f.in("in.latent").to(f.place.dtype);
  auto inv_std = 1.0 / f.in("in.scale_std");
  r.compare("out.recon_raw", vae.model()->decode(latent, f.in("in.scale_mean"), inv_std));
  auto recon_BFCHW = vae.decode_to_pixel(latent.permute({0, 2, 1, 3, 4}));
  r.compare("out.recon", recon_BFCHW.permute({0, 2, 1, 3, 4}));
}

}  // namespace causvid::checks

// Kind `diffusers_wan_vae` (tests/fixtures/KINDS.layout_vae_t5.md): an AutoencoderKLWan folder
// loaded as vae_path loads it (models::load_wan_vae_any); out.mu un-normalised, out.latent
// normalised with config.json's latents_mean / _std, out.decoded from un-normalised latents,
// clamped as diffusers' decode does.
#include "models/vae/vae_layouts.h"

namespace causvid::checks {

void check_diffusers_wan_vae(const Fixture& f, FixtureReport& r) {
  auto vae = models::load_wan_vae_any(f.dir + "/" + f.meta.value("folder", std::string("model")));
  if (f.meta.contains("wan_config")) {
    auto want = models::WanVAEConfig::from_json(f.meta["wan_config"]);
    TORCH_CHECK(want.dim == vae->model()->config().dim && want.dim_mult == vae->model()->config().dim_mult,
                f.dir, ": config.json and meta.json's wan_config disagree");
  }
  vae->to(f.place.device, f.place.dtype);
  torch::NoGradGuard ng;
  auto video = f.in("in.video");
  const int64_t z = vae->model()->config().z_dim;
  r.compare("out.mu", vae->model()->encode_moments(video).slice(1, 0, z));
  r.compare("out.latent", vae->encode_to_latent(video).permute({0, 2, 1, 3, 4}));
  auto zero = torch::zeros({z}, video.options()), one = torch::ones({z}, video.options());
  r.compare("out.decoded", vae->model()->decode(f.in("in.latent"), zero, one).clamp(-1, 1));
}

}  // namespace causvid::checks
