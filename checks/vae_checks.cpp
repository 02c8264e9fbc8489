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
