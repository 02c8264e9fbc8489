// cli/data_command.cpp: the data preparation commands (CausVid's distillation_data/ and
// ode_data/ scripts). Thin: parse, split over ranks, run, print the summary.
//   causvid preprocess   process_mixkit.py: videos -> 16:9, 832x480, 16 fps, 81 frames
//   causvid encode       compute_vae_latent.py: videos + captions -> VAE latent shards
//   causvid lmdb info PATH / lmdb build --shards .. --out ..   create_lmdb_iterative.py
//   causvid lmdb verify DIR   walks a CausVid array LMDB in a guarded child (lmdb_verify.h)
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "core/config.h"
#include "core/dist.h"
#include "core/failures.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/latent_tools.h"
#include "data/lmdb_verify.h"
#include "data/preprocess.h"
#include "data/prompt_cache.h"
#include "data/shards.h"

namespace causvid::cli {
namespace {

struct LmdbBuildArgs {
  std::vector<std::string> shards, more;
  std::string out;
  bool overwrite = false;
};

int run_lmdb_build(const LmdbBuildArgs& a) {
  std::vector<std::string> inputs = a.shards;
  inputs.insert(inputs.end(), a.more.begin(), a.more.end());
  auto files = data::list_shards(inputs);
  LOG_INFO("%d shard files", files.size());
  data::LmdbBuildOptions o;
  o.overwrite = a.overwrite;
  const auto t0 = std::chrono::steady_clock::now();
  auto st =
      data::build_lmdb_from_shards(files, a.out, o, [&](int64_t done, int64_t total, int64_t rows) {
        if (done == total || done % 100 == 0) LOG_INFO("shard %d/%d, %d rows", done, total, rows);
      });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string shape;
  for (auto d : st.latents_shape) shape += (shape.empty() ? "" : " ") + std::to_string(d);
  LOG_INFO(
      "%d shards, %d rows read, %d duplicate prompts dropped, %d rows written "
      "(latents_shape \"%s\") in %.2f s (%.1f rows/s)",
      st.shards, st.rows_read, st.duplicates, st.rows_written, shape, s,
      st.rows_written / std::max(s, 1e-9));
  std::printf("%s\n", a.out.c_str());
  return 0;
}

struct LmdbVerifyArgs {
  std::string dir;
  double timeout_s = data::kDefaultVerifyTimeoutS;
};

// Exit 0 and the summary on stdout when sound; exit 1 and the error (naming the file and the
// key) logged otherwise. A reader crash or hang stays inside the checking child.
int run_lmdb_verify(const LmdbVerifyArgs& a) {
  TORCH_CHECK(a.timeout_s > 0, "--timeout: got ", a.timeout_s, ", want > 0");
  auto v = data::verify_array_lmdb(a.dir, a.timeout_s);
  if (!v.ok()) {
    LOG_ERROR("lmdb verify: %s", v.error);
    return 1;
  }
  std::printf("%s/data.mdb: sound (%ld entries, checked in %.3f s)\n%s", a.dir.c_str(),
              static_cast<long>(v.num_entries), v.seconds, v.summary.c_str());
  return 0;
}

struct PreprocessArgs {
  std::string input, output;
  int width = 832, height = 480, frames = 81, jobs = 1, crf = 18;
  double fps = 16, aspect_tolerance = 0.1;
  bool overwrite = false;
};

int run_preprocess(const PreprocessArgs& a) {
  data::PreprocessOptions o;
  o.width = a.width;
  o.height = a.height;
  o.fps = a.fps;
  o.frames = a.frames;
  o.aspect_tolerance = a.aspect_tolerance;
  o.jobs = a.jobs;
  o.crf = a.crf;
  o.overwrite = a.overwrite;
  auto files = data::list_videos(a.input);
  TORCH_CHECK(!files.empty(), a.input, ": no video files in the folder");
  auto dist = core::DistContext::init_from_env();
  core::set_log_rank(dist->rank());
  LOG_INFO("%d videos, rank %d/%d, %d jobs", files.size(), dist->rank(), dist->world_size(),
           o.jobs);
  auto s = data::preprocess_videos(files, a.output, o, dist->rank(), dist->world_size());
  // Summary over all ranks.
  const auto c = dist->world().sum({s.processed, s.skipped, s.failed});
  LOG_INFO("rank %d: %d processed, %d skipped, %d failed in %.2f s (%.2f videos/s)", dist->rank(),
           s.processed, s.skipped, s.failed, s.seconds,
           s.results.size() / std::max(s.seconds, 1e-9));
  if (dist->is_main())
    std::printf("processed %ld, skipped %ld, failed %ld (of %zu videos)\n", static_cast<long>(c[0]),
                static_cast<long>(c[1]), static_cast<long>(c[2]), files.size());
  std::vector<core::ItemFailure> failed;
  for (const auto& r : s.results)
    if (r.status == data::PreprocessStatus::kFailed) failed.push_back({r.input, r.reason});
  const auto all = core::report_failures(dist->world(), a.output, failed, "preprocess");
  return all.empty() ? 0 : 1;  // the others are written, and a rerun skips them
}

struct EncodeArgs {
  ConfigArgs config;
  std::string videos, captions, out, vae, dtype = "fp32", device;
  int frames = 81, width = 0, height = 0, shard_size = 16, vae_dim = 96, vae_z_dim = 16;
};

int run_encode(const EncodeArgs& a) {
  auto c = core::load_config(a.config.path, a.config.sets);
  data::EncodeOptions o;
  o.frames = a.frames;
  o.width = a.width;
  o.height = a.height;
  o.shard_size = a.shard_size;
  o.store_dtype = data::parse_embed_dtype("--dtype", a.dtype);
  o.compute_dtype = c.mixed_precision ? torch::kBFloat16 : torch::kFloat32;

  auto files = data::list_videos(a.videos);
  TORCH_CHECK(!files.empty(), a.videos, ": no video files in the folder");
  auto caps = data::read_captions(a.captions);
  core::DistOptions dopt;
  dopt.device = a.device.empty() ? c.device : a.device;  // chosen once, before the process group
  auto dist = core::DistContext::init_from_env(dopt);
  core::set_log_rank(dist->rank());
  o.device = dist->device();

  models::WanVAEConfig vc;
  vc.dim = a.vae_dim;
  vc.z_dim = a.vae_z_dim;
  auto vae = vc.z_dim == 16
                 ? models::WanVAEWrapper(vc)
                 : models::WanVAEWrapper(vc, torch::zeros({vc.z_dim}), torch::ones({vc.z_dim}));
  const std::string vp = a.vae.empty() ? c.vae_file() : a.vae;
  vae.load_file(vp);
  vae.to(o.device, o.compute_dtype);
  LOG_INFO("%d videos, VAE %s, rank %d/%d", files.size(), vp, dist->rank(), dist->world_size());
  auto st = data::encode_videos(vae, files, caps, a.out, o, dist->rank(), dist->world_size());
  LOG_INFO(
      "rank %d: %d videos encoded, %d failed, %d shards written, %d existing, %.2f s "
      "(%.3f s/video)",
      dist->rank(), st.done, st.failed, st.shards_written, st.shards_existing, st.seconds,
      st.seconds / std::max<int64_t>(st.done, 1));
  const auto counts = dist->world().sum({st.done, st.failed});
  const auto all = core::report_failures(dist->world(), a.out, st.failures, "encode");
  if (dist->is_main())
    std::printf("encoded %ld, failed %ld (of %zu videos) -> %s\n",
                static_cast<long>(counts[0]),
                static_cast<long>(counts[1]), files.size(), a.out.c_str());
  return all.empty() ? 0 : 1;
}

void add_lmdb_commands(Commands& cmds) {
  CLI::App* lmdb = cmds.add_group(
      "lmdb", "LMDB info / verify / build from latent shards (create_lmdb_iterative)");
  auto path = std::make_shared<std::string>();
  CLI::App* app = cmds.add("info",
                           "Print the arrays of a CausVid-layout LMDB (shape, row count, row "
                           "kind) and its first prompt.",
                           [path] {
                             std::fputs(data::lmdb_info(*path).c_str(), stdout);
                             return 0;
                           },
                           lmdb);
  app->add_option("PATH", *path, "LMDB folder (holds data.mdb)")->required();

  auto ver = std::make_shared<LmdbVerifyArgs>();
  app = cmds.add("verify",
                 "Check a CausVid array LMDB before trusting it: data.mdb's size and meta "
                 "pages, then a walk of every key in a forked child (a crash or hang of "
                 "liblmdb on a corrupt file stays there), every row's byte count against its "
                 "\"<array>_shape\". Exit 0 when sound, 1 with an error naming the file and "
                 "the key otherwise. Not a checksum: flipped bits inside a row's values pass.",
                 [ver] { return run_lmdb_verify(*ver); }, lmdb);
  app->add_option("DIR", ver->dir, "LMDB folder (holds data.mdb)")->required();
  app->add_option("--timeout", ver->timeout_s, "seconds the walk may take before it counts "
                  "as a hang");

  auto b = std::make_shared<LmdbBuildArgs>();
  app = cmds.add("build",
                 "Aggregate latent shards (ours: .safetensors from `causvid encode` / `causvid "
                 "ode-pairs`; CausVid's: .pt dicts {prompt: tensor}) into one LMDB with arrays "
                 "\"latents\" (float16) and \"prompts\", dropping prompts seen before as "
                 "create_lmdb_iterative.py does. Written atomically.",
                 [b] { return run_lmdb_build(*b); }, lmdb);
  app->add_option("--shards", b->shards, "shard folders or files (repeatable; more may follow)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->default_str("");
  app->add_option("SHARDS", b->more, "further shard folders or files")->default_str("");
  app->add_option("--out", b->out, "output LMDB folder")->required();
  add_overwrite_flag(*app, b->overwrite);
}

}  // namespace

void add_data_commands(Commands& cmds) {
  add_lmdb_commands(cmds);
  auto pp = std::make_shared<PreprocessArgs>();
  CLI::App* app = cmds.add(
      "preprocess",
      "Prepare raw videos for VAE encoding as CausVid's process_mixkit.py: keep 16:9 videos "
      "only, resize to WIDTHxHEIGHT, resample to FPS, keep the first FRAMES frames, write mp4 "
      "(H.264). Parallel over files (--jobs) and over ranks (torchrun/SLURM/MPI: file i goes "
      "to rank i % world size).",
      [pp] { return run_preprocess(*pp); });
  app->add_option("--input", pp->input, "folder of videos (.mp4 .mov .m4v .mkv .avi .webm)")
      ->required();
  app->add_option("--output", pp->output, "output folder (<stem>.mp4 per processed video)")
      ->required();
  app->add_option("--width", pp->width, "output width");
  app->add_option("--height", pp->height, "output height");
  app->add_option("--fps", pp->fps, "output frame rate");
  app->add_option("--frames", pp->frames, "frames kept (shorter videos are skipped)");
  app->add_option("--aspect-tolerance", pp->aspect_tolerance, "relative tolerance of the 16:9 test");
  app->add_option("--jobs", pp->jobs, "worker threads per rank");
  app->add_option("--crf", pp->crf, "libx264 quality (0 lossless .. 51)");
  add_overwrite_flag(*app, pp->overwrite, "redo videos whose output exists (default: skip)");

  auto en = std::make_shared<EncodeArgs>();
  app = cmds.add("encode",
                 "VAE-encode preprocessed videos (81 frames of 480x832 -> latents [21, 16, 60, "
                 "104]) with their captions into latent shards (<out>/latents_<k>.safetensors) "
                 "for `causvid lmdb build`. Distributed over ranks by shard; existing shards are "
                 "skipped (resumable). A video without a caption is an error before any work; an "
                 "unreadable video is skipped and counted as failed.",
                 [en] { return run_encode(*en); });
  app->add_option("--videos", en->videos, "folder of videos (output of `causvid preprocess`)")
      ->required();
  app->add_option("--captions", en->captions, "JSON {\"<video file name>\": \"caption\"}")
      ->required();
  add_config_options(*app, en->config, "run config (vae_path / wan_model_dir, device)",
                     "config override key=value (repeatable)")
      ->required();
  app->add_option("--out", en->out, "output folder for the shards")->required();
  app->add_option("--vae", en->vae, "VAE weights (default: the config's vae_path)");
  app->add_option("--frames", en->frames, "frames read per video (1 + 4k)");
  app->add_option("--width", en->width, "resize to this width when reading (0: keep)");
  app->add_option("--height", en->height, "resize to this height when reading (0: keep)");
  app->add_option("--shard-size", en->shard_size, "videos per shard");
  add_dtype_option(*app, "--dtype", en->dtype, "stored dtype: fp32, fp16 or bf16");
  add_device_option(*app, en->device);
  app->add_option("--vae-dim", en->vae_dim, "VAE base width (96 = Wan2.1; tests use tiny VAEs)");
  app->add_option("--vae-z-dim", en->vae_z_dim,
                  "latent channels (16 = Wan2.1 with its latent mean/std; any other value uses "
                  "mean 0, std 1)");
}

}  // namespace causvid::cli
