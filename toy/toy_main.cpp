// toy/toy_main.cpp: `causvid toy data|eval|preview`, the CPU toy world's tools (toy/world.h).
//   causvid toy data --out DIR --num N --seed S    the training set:
//       DIR/latents_lmdb/      CausVid's array LMDB: "latents" [N, F, 4, H, W] float16 and
//                              "prompts" [N] (data/array_lmdb.h; what the diffusion stage
//                              reads, and what CausVid's Python reads)
//       DIR/train_prompts.txt  the N prompts in row order
//       DIR/eval_prompts.txt   every one of the 96 prompts once (same vocabulary; the eval
//                              set is in-distribution: the toy world tests distillation,
//                              not compositional generalisation)
//       DIR/world.json         the world's parameters; DIR/preview.png the first 8 videos
//   causvid toy eval ...       = `causvid eval toy` (toy/eval_toy_main.cpp)
//   causvid toy preview --latents FILE|--lmdb DIR --out PNG|MP4
// The output directory appears atomically (written as DIR.tmp.<pid>, then renamed).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/args.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "data/array_lmdb.h"
#include "toy/world.h"

namespace causvid::cli {

int toy_run_main(int argc, char** argv);        // toy/run_main.cpp

namespace {

std::string join_lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

}  // namespace

int toy_data_main(int argc, char** argv) {
  core::ArgParser p("causvid toy data", "Write the toy world's training set (LMDB + prompt files).");
  auto& out = p.flag("--out", "", "output directory (must not exist unless --overwrite)");
  auto& num_s = p.flag("--num", "4096", "number of videos");
  auto& seed_s = p.flag("--seed", "0", "seed (prompt order and start positions)");
  auto& frames_s = p.flag("--frames", "6", "latent frames (a multiple of 3)");
  auto& height_s = p.flag("--height", "12", "latent height (even)");
  auto& width_s = p.flag("--width", "12", "latent width (even)");
  auto& speed_s = p.flag("--speed", "1", "pixels per frame");
  auto& align_s = p.flag("--align", "2", "start positions are multiples of this (2: on the patch grid)");
  auto& overwrite = p.toggle("--overwrite", "replace an existing output directory");
  if (!p.parse(argc, argv)) return p.exit_code();
  TORCH_CHECK(!out.empty(), "--out: required");
  toy::WorldSpec spec;
  spec.frames = core::ArgParser::to_int("--frames", frames_s);
  spec.height = core::ArgParser::to_int("--height", height_s);
  spec.width = core::ArgParser::to_int("--width", width_s);
  spec.speed = core::ArgParser::to_int("--speed", speed_s);
  spec.align = core::ArgParser::to_int("--align", align_s);
  TORCH_CHECK(spec.align >= 1 && spec.height % spec.align == 0 && spec.width % spec.align == 0,
              "--align: got ", spec.align, ", want a divisor of --height and --width");
  const int64_t num = core::ArgParser::to_int("--num", num_s);
  const int64_t seed = core::ArgParser::to_int("--seed", seed_s);
  TORCH_CHECK(spec.frames >= 3 && spec.frames % 3 == 0, "--frames: got ", spec.frames,
              ", want a positive multiple of 3 (causal blocks of 3 latent frames)");
  TORCH_CHECK(spec.height >= 8 && spec.height % 2 == 0, "--height: got ", spec.height,
              ", want an even number >= 8");
  TORCH_CHECK(spec.width >= 8 && spec.width % 2 == 0, "--width: got ", spec.width,
              ", want an even number >= 8");
  TORCH_CHECK(spec.speed >= 1 && 2 * spec.speed < std::min(spec.height, spec.width), "--speed: got ",
              spec.speed, ", want 1 .. ", (std::min(spec.height, spec.width) - 1) / 2);
  TORCH_CHECK(num >= 1, "--num: got ", num, ", want >= 1");
  namespace fs = std::filesystem;
  std::error_code ec;
  TORCH_CHECK(overwrite == "1" || !fs::exists(out, ec), out,
              ": already exists (pass --overwrite to replace it)");

  auto d = toy::generate(num, static_cast<uint64_t>(seed), spec);
  std::vector<std::string> eval_prompts;
  for (const auto& a : toy::all_attributes()) eval_prompts.push_back(toy::make_prompt(a));

  fs::path outp(out);
  if (!outp.parent_path().empty()) core::make_dirs(outp.parent_path().string());
  const std::string tmp = out + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  try {
    core::make_dirs(tmp);
    {
      data::ArrayLmdbWriter w(tmp + "/latents_lmdb");
      const int64_t chunk = 256;
      for (int64_t i = 0; i < num; i += chunk) {
        const int64_t n = std::min(chunk, num - i);
        w.put_tensor_rows("latents", i, d.latents.narrow(0, i, n));
        w.put_string_rows("prompts", i,
                          std::vector<std::string>(d.prompts.begin() + i, d.prompts.begin() + i + n));
      }
      auto s = d.latents.sizes();
      w.finish({{"latents", std::vector<int64_t>(s.begin(), s.end())}, {"prompts", {num}}});
    }
    core::write_file_atomic(tmp + "/train_prompts.txt", join_lines(d.prompts));
    core::write_file_atomic(tmp + "/eval_prompts.txt", join_lines(eval_prompts));
    nlohmann::json j = {{"format", "causvid-toy-world"}, {"version", 1},
                        {"num", num},       {"seed", seed},
                        {"frames", spec.frames}, {"channels", toy::kChannels},
                        {"height", spec.height}, {"width", spec.width},
                        {"speed", spec.speed},   {"align", spec.align}, {"vocabulary", toy::vocabulary()},
                        {"latents_shape", std::vector<int64_t>(d.latents.sizes().begin(),
                                                               d.latents.sizes().end())}};
    core::write_file_atomic(tmp + "/world.json", j.dump(2) + "\n");
    toy::write_preview_png(tmp + "/preview.png", d.latents.narrow(0, 0, std::min<int64_t>(8, num)));
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  if (fs::exists(out, ec)) fs::remove_all(out);
  fs::rename(tmp, out);
  LOG_INFO("toy data: %d videos [%d, 4, %d, %d] (%d tokens each with patch 1x2x2)", num,
           spec.frames, spec.height, spec.width, spec.frames * spec.height * spec.width / 4);
  std::printf("%s/latents_lmdb\n", out.c_str());
  return 0;
}

namespace {

int toy_preview_main(int argc, char** argv) {
  core::ArgParser p("causvid toy preview", "Show toy latents as a PNG contact sheet or an mp4.");
  auto& lat_f = p.flag("--latents", "", "safetensors with 'latents' [N, F, 4, H, W]");
  auto& lmdb = p.flag("--lmdb", "", "or a toy LMDB (array 'latents')");
  auto& out = p.flag("--out", "", "output .png (contact sheet) or .mp4 (first video)");
  auto& num_s = p.flag("--num", "8", "videos shown in the contact sheet");
  auto& scale_s = p.flag("--scale", "8", "pixels per latent pixel");
  if (!p.parse(argc, argv)) return p.exit_code();
  TORCH_CHECK(!out.empty(), "--out: required");
  TORCH_CHECK(lat_f.empty() != lmdb.empty(), "give exactly one of --latents, --lmdb");
  const int64_t num = core::ArgParser::to_int("--num", num_s);
  const int64_t scale = core::ArgParser::to_int("--scale", scale_s);
  torch::Tensor lat;
  if (!lat_f.empty()) {
    auto m = core::load_safetensors(lat_f);
    TORCH_CHECK(m.count("latents"), lat_f, ": no tensor 'latents'");
    lat = m.at("latents").to(torch::kFloat32);
  } else {
    data::ArrayLmdb db(lmdb);
    std::vector<torch::Tensor> rows;
    for (int64_t i = 0; i < std::min(num, db.rows("latents")); ++i) rows.push_back(db.tensor_row("latents", i));
    lat = torch::stack(rows, 0);
  }
  if (lat.dim() == 4) lat = lat.unsqueeze(0);
  const bool mp4 = out.size() > 4 && out.compare(out.size() - 4, 4, ".mp4") == 0;
  if (mp4)
    toy::write_preview_mp4(out, lat[0], scale);
  else
    toy::write_preview_png(out, lat, scale, num);
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace

int toy_main(int argc, char** argv) {
  const char* usage =
      "usage: causvid toy run|data|eval|preview [options]   (--help on each)\n"
      "  run      the whole CPU toy pipeline (data, teacher, 4 stages, metric table)\n"
      "  data     write the toy world's training set (LMDB + prompt files)\n"
      "  eval     score toy videos (= causvid eval toy)\n"
      "  preview  show toy latents as PNG / mp4\n";
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::printf("%s", usage);
    return argc < 2 ? 2 : 0;
  }
  std::string sub = argv[1];
  std::string prog = "causvid toy " + sub;
  std::vector<char*> args(argv + 1, argv + argc);
  args[0] = prog.data();
  if (sub == "data") return toy_data_main(static_cast<int>(args.size()), args.data());
  if (sub == "run") return toy_run_main(static_cast<int>(args.size()), args.data());
  if (sub == "eval") return eval_toy_main(static_cast<int>(args.size()), args.data());
  if (sub == "preview") return toy_preview_main(static_cast<int>(args.size()), args.data());
  std::fprintf(stderr, "causvid toy: unknown subcommand '%s'\n%s", sub.c_str(), usage);
  return 2;
}

}  // namespace causvid::cli
