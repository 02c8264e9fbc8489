// data/lmdb_main.cpp: `causvid lmdb info PATH` and `causvid lmdb build --shards .. --out ..`
// (CausVid's causvid/ode_data/create_lmdb_iterative.py). Thin: parse, run, print.
#include <chrono>
#include <cstdio>
#include <cstring>

#include "cli/commands.h"
#include "core/args.h"
#include "core/log.h"
#include "data/shards.h"

namespace causvid::cli {
namespace {

int lmdb_info_main(int argc, char** argv) {
  core::ArgParser p("causvid lmdb info",
                    "Print the arrays of a CausVid-layout LMDB (shape, row count, row kind) "
                    "and its first prompt.");
  auto& path = p.positional("PATH", "LMDB folder (holds data.mdb)");
  if (!p.parse(argc, argv)) return p.exit_code();
  std::fputs(data::lmdb_info(path).c_str(), stdout);
  return 0;
}

int lmdb_build_main(int argc, char** argv) {
  core::ArgParser p("causvid lmdb build",
                    "Aggregate latent shards (ours: .safetensors from `causvid encode` / "
                    "`causvid ode-pairs`; CausVid's: .pt dicts {prompt: tensor}) into one "
                    "LMDB with arrays \"latents\" (float16) and \"prompts\", dropping prompts "
                    "seen before as create_lmdb_iterative.py does. Written atomically.");
  auto& shards = p.multi("--shards", "a shard folder or file (repeatable; more may follow)");
  auto& more = p.rest("SHARDS", "further shard folders or files");
  auto& out = p.flag("--out", "", "output LMDB folder");
  auto& overwrite = p.toggle("--overwrite", "replace an existing --out");
  if (!p.parse(argc, argv)) return p.exit_code();
  TORCH_CHECK(!out.empty(), "--out: required (the LMDB folder to write)");
  std::vector<std::string> inputs = shards;
  inputs.insert(inputs.end(), more.begin(), more.end());
  auto files = data::list_shards(inputs);
  LOG_INFO("%d shard files", files.size());
  data::LmdbBuildOptions o;
  o.overwrite = overwrite == "1";
  const auto t0 = std::chrono::steady_clock::now();
  auto st =
      data::build_lmdb_from_shards(files, out, o, [&](int64_t done, int64_t total, int64_t rows) {
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
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace

int lmdb_main(int argc, char** argv) {
  if (argc >= 2 && !std::strcmp(argv[1], "info")) return lmdb_info_main(argc - 1, argv + 1);
  if (argc >= 2 && !std::strcmp(argv[1], "build")) return lmdb_build_main(argc - 1, argv + 1);
  std::fprintf(stderr,
               "usage: causvid lmdb info PATH\n"
               "       causvid lmdb build --shards DIR_OR_FILE... --out LMDB [--overwrite]\n"
               "(causvid lmdb info --help / build --help for details)\n");
  const bool help = argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"));
  return help ? 0 : 2;
}

}  // namespace causvid::cli
