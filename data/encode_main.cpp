// data/encode_main.cpp: `causvid encode` (CausVid's distillation_data/compute_vae_latent.py):
// preprocessed videos + captions -> VAE latent shards for `causvid lmdb build`. Thin: parse,
// load the VAE, split over ranks, run.
#include <cstdio>

#include "cli/commands.h"
#include "core/args.h"
#include "core/config.h"
#include "core/dist.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/latent_tools.h"
#include "data/preprocess.h"
#include "data/prompt_cache.h"

namespace causvid::cli {

int encode_main(int argc, char** argv) {
  core::ArgParser p("causvid encode",
                    "VAE-encode preprocessed videos (81 frames of 480x832 -> latents "
                    "[21, 16, 60, 104]) with their captions into latent shards "
                    "(<out>/latents_<k>.safetensors) for `causvid lmdb build`. Distributed "
                    "over ranks by shard; existing shards are skipped (resumable). A video "
                    "without a caption is an error before any work; an unreadable video is "
                    "skipped and counted as failed.");
  auto& videos = p.flag("--videos", "", "folder of videos (output of `causvid preprocess`)");
  auto& captions = p.flag("--captions", "", "JSON {\"<video file name>\": \"caption\"}");
  auto& config = p.flag("--config", "", "run config (vae_path / wan_model_dir, device)");
  auto& sets = p.multi("--set", "config override key=value (repeatable)");
  auto& out = p.flag("--out", "", "output folder for the shards");
  auto& vae_path = p.flag("--vae", "", "VAE weights (default: the config's vae_path)");
  auto& frames = p.flag("--frames", "81", "frames read per video (1 + 4k)");
  auto& width = p.flag("--width", "0", "resize to this width when reading (0: keep)");
  auto& height = p.flag("--height", "0", "resize to this height when reading (0: keep)");
  auto& shard_size = p.flag("--shard-size", "16", "videos per shard");
  auto& dtype = p.flag("--dtype", "fp32", "stored dtype: fp32, fp16 or bf16");
  auto& device = p.flag("--device", "", "auto, cpu, cuda (= cuda:LOCAL_RANK) or cuda:N (default: the config's device)");
  auto& vae_dim = p.flag("--vae-dim", "96", "VAE base width (96 = Wan2.1; tests use tiny VAEs)");
  auto& vae_z = p.flag("--vae-z-dim", "16",
                       "latent channels (16 = Wan2.1 with its latent mean/std; any other value "
                       "uses mean 0, std 1)");
  if (!p.parse(argc, argv)) return p.exit_code();
  TORCH_CHECK(!videos.empty(), "--videos: required");
  TORCH_CHECK(!captions.empty(), "--captions: required");
  TORCH_CHECK(!config.empty(), "--config: required");
  TORCH_CHECK(!out.empty(), "--out: required");
  auto c = core::load_config(config, sets);
  data::EncodeOptions o;
  o.frames = core::ArgParser::to_int("--frames", frames);
  o.width = core::ArgParser::to_int("--width", width);
  o.height = core::ArgParser::to_int("--height", height);
  o.shard_size = core::ArgParser::to_int("--shard-size", shard_size);
  o.store_dtype = data::parse_embed_dtype("--dtype", dtype);
  o.compute_dtype = c.mixed_precision ? torch::kBFloat16 : torch::kFloat32;

  auto files = data::list_videos(videos);
  TORCH_CHECK(!files.empty(), videos, ": no video files in the folder");
  auto caps = data::read_captions(captions);
  core::DistOptions dopt;
  dopt.device = device.empty() ? c.device : device;  // chosen once, before the process group
  auto dist = core::DistContext::init_from_env(dopt);
  core::set_log_rank(dist->rank());
  o.device = dist->device();

  models::WanVAEConfig vc;
  vc.dim = core::ArgParser::to_int("--vae-dim", vae_dim);
  vc.z_dim = core::ArgParser::to_int("--vae-z-dim", vae_z);
  auto vae = vc.z_dim == 16
                 ? models::WanVAEWrapper(vc)
                 : models::WanVAEWrapper(vc, torch::zeros({vc.z_dim}), torch::ones({vc.z_dim}));
  const std::string vp = vae_path.empty() ? c.vae_file() : vae_path;
  vae.load_file(vp);
  vae.to(o.device, o.compute_dtype);
  LOG_INFO("%d videos, VAE %s, rank %d/%d", files.size(), vp, dist->rank(), dist->world_size());
  auto st = data::encode_videos(vae, files, caps, out, o, dist->rank(), dist->world_size());
  LOG_INFO(
      "rank %d: %d videos encoded, %d failed, %d shards written, %d existing, %.2f s "
      "(%.3f s/video)",
      dist->rank(), st.done, st.failed, st.shards_written, st.shards_existing, st.seconds,
      st.seconds / std::max<int64_t>(st.done, 1));
  const auto counts = dist->world().sum({st.done, st.failed});
  TORCH_CHECK(counts[0] > 0 || st.shards_existing > 0, videos,
              ": no video could be encoded (", counts[1],
              " failed; see the warnings above)");
  if (dist->is_main())
    std::printf("encoded %ld, failed %ld (of %zu videos) -> %s\n",
                static_cast<long>(counts[0]),
                static_cast<long>(counts[1]), files.size(), out.c_str());
  return 0;
}

}  // namespace causvid::cli
