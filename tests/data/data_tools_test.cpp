// tests/data/data_tools_test.cpp: the data tools at tiny sizes: latent shards (ours and
// CausVid's .pt), `causvid lmdb build` with CausVid's prompt deduplication, `causvid lmdb
// info`, `causvid preprocess` on generated videos, `causvid encode` with a tiny random VAE,
// `causvid ode-pairs` with the tiny DiT preset (single process and 2 ranks), and the bad
// inputs of issue #5; the failure lists of issue #14 (failures.txt, symlink loops).
#include <filesystem>
#include <fstream>

#include "core/failures.h"
#include "core/fs.h"
#include "core/safetensors.h"
#include "core/state_dict.h"
#include "core/tensor_io.h"
#include "data/array_lmdb.h"
#include "data/latent_tools.h"
#include "data/lmdb.h"
#include "data/preprocess.h"
#include "data/prompt_cache.h"
#include "data/shards.h"
#include "data/video_io.h"
#include "inference/causal_pipeline.h"
#include "inference/ode_pairs.h"
#include "models/vae/wan_vae.h"
#include "models/wan/flow_match.h"
#include "models/wan/wan_config.h"
#include "tests/test_util.h"

namespace causvid {
namespace {
namespace fs = std::filesystem;

// One intra-op thread per child process: on a loaded 2-core machine OpenMP's spinning
// threads made the tiny teacher ~70x slower than one thread.
std::string bin() { return "CAUSVID_NUM_THREADS=1 " + testing::causvid_binary(); }

// Runs the in-process part of a test with one intra-op thread, restoring the count after.
struct OneThread {
  int saved = at::get_num_threads();
  OneThread() { at::set_num_threads(1); }
  ~OneThread() { at::set_num_threads(saved); }
};
bool contains(const std::string& s, const std::string& n) { return s.find(n) != std::string::npos; }

torch::Tensor half_round(const torch::Tensor& t) { return t.to(torch::kHalf).to(torch::kFloat); }

TEST(LmdbBuild, OurShardsDeduplicatedAsCausVid) {
  testing::TempDir dir;
  torch::manual_seed(0);
  auto a = torch::randn({3, 2, 1, 2, 2, 2}), b = torch::randn({2, 2, 1, 2, 2, 2});
  core::make_dirs(dir.file("shards"));
  data::write_shard(dir.file("shards/s_000000.safetensors"), {"a cat", "a dog", "a cat"}, a);
  data::write_shard(dir.file("shards/s_000001.safetensors"), {"a dog", "snow \xC3\xA9"}, b,
                    torch::kBFloat16);
  auto s = data::read_shard(dir.file("shards/s_000001.safetensors"));
  EXPECT_EQ(s.prompts, (std::vector<std::string>{"a dog", "snow \xC3\xA9"}));
  EXPECT_EQ(s.latents.scalar_type(), torch::kBFloat16);

  auto st = data::build_lmdb_from_shards(data::list_shards({dir.file("shards")}), dir.file("db"));
  EXPECT_EQ(st.shards, 2);
  EXPECT_EQ(st.rows_read, 5);
  EXPECT_EQ(st.duplicates, 2);  // "a cat" within a shard, "a dog" across shards
  EXPECT_EQ(st.rows_written, 3);
  data::ArrayLmdb db(dir.file("db"));
  EXPECT_EQ(db.shape("latents"), (std::vector<int64_t>{3, 2, 1, 2, 2, 2}));
  EXPECT_EQ(db.shape("prompts"), (std::vector<int64_t>{3}));
  EXPECT_EQ(db.string_row("prompts", 0), "a cat");
  EXPECT_EQ(db.string_row("prompts", 1), "a dog");
  EXPECT_EQ(db.string_row("prompts", 2), "snow \xC3\xA9");
  EXPECT_TRUE(torch::equal(db.tensor_row("latents", 0), half_round(a[0])));
  EXPECT_TRUE(torch::equal(db.tensor_row("latents", 1), half_round(a[1])));
  EXPECT_TRUE(torch::equal(db.tensor_row("latents", 2),
                           half_round(b[1].to(torch::kBFloat16).to(torch::kFloat))));
  EXPECT_FALSE(fs::exists(dir.file("db") + ".tmp." + std::to_string(::getpid())));

  // Through the binary: build (positional shards after --shards) and info.
  std::string out;
  int rc = testing::run_command(bin() + " lmdb build --out " + dir.file("db2") + " --shards " +
                                    dir.file("shards/s_000000.safetensors") + " " +
                                    dir.file("shards/s_000001.safetensors"),
                                &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "2 duplicate prompts dropped")) << out;
  rc = testing::run_command(bin() + " lmdb info " + dir.file("db2"), &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "latents: shape [3, 2, 1, 2, 2, 2], rows 3, float16 rows of 32 bytes"))
      << out;
  EXPECT_TRUE(contains(out, "prompts: shape [3], rows 3, strings")) << out;
  EXPECT_TRUE(contains(out, "first prompt: a cat")) << out;
  // An existing output needs --overwrite.
  rc = testing::run_command(
      bin() + " lmdb build --out " + dir.file("db2") + " --shards " + dir.file("shards"), &out);
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(contains(out, "already exists")) << out;
  rc = testing::run_command(bin() + " lmdb build --overwrite --out " + dir.file("db2") +
                                " --shards " + dir.file("shards/s_000001.safetensors"),
                            &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(data::ArrayLmdb(dir.file("db2")).rows("prompts"), 2);
}

TEST(LmdbBuild, CausVidTorchSaveShards) {
  // generate_ode_pairs.py: torch.save({prompt: tensor [1, S, F, C, H, W]}, "00000.pt").
  testing::TempDir dir;
  torch::manual_seed(1);
  auto t0 = torch::randn({1, 4, 3, 2, 2, 2}), t1 = torch::randn({1, 4, 3, 2, 2, 2});
  core::make_dirs(dir.file("py"));
  core::save_torch_checkpoint(dir.file("00000.pt"),
                              core::nested_dict({{"a red ball", t0}, {"a blue cube", t1}}));
  core::save_torch_checkpoint(dir.file("00001.pt"), core::nested_dict({{"a red ball", t1}}));
  auto s = data::read_shard(dir.file("00000.pt"));
  ASSERT_EQ(s.prompts, (std::vector<std::string>{"a red ball", "a blue cube"}));
  EXPECT_TRUE(torch::equal(s.latents, torch::cat({t0, t1})));
  auto st = data::build_lmdb_from_shards(data::list_shards({dir.path()}), dir.file("db"));
  EXPECT_EQ(st.rows_written, 2);
  EXPECT_EQ(st.duplicates, 1);
  data::ArrayLmdb db(dir.file("db"));
  EXPECT_EQ(db.shape("latents"), (std::vector<int64_t>{2, 4, 3, 2, 2, 2}));
  EXPECT_TRUE(torch::equal(db.tensor_row("latents", 1), half_round(t1[0])));
  EXPECT_EQ(db.string_row("prompts", 1), "a blue cube");
  // A shard written by Python's torch.save itself (bf16 values, as generate_ode_pairs.py
  // under autocast), when python3-torch is installed.
  if (testing::run_command("/usr/bin/python3 -c 'import torch'") == 0) {
    std::string out;
    int rc = testing::run_command(
        "/usr/bin/python3 -c \"import torch; torch.manual_seed(0); torch.save({'p one': "
        "torch.arange(8.).view(1, 2, 1, 2, 2).bfloat16(), 'p two': torch.ones(1, 2, 1, 2, 2)"
        ".bfloat16()}, '" +
            dir.file("py/00000.pt") + "')\"",
        &out);
    ASSERT_EQ(rc, 0) << out;
    auto st2 = data::build_lmdb_from_shards(data::list_shards({dir.file("py")}), dir.file("pydb"));
    EXPECT_EQ(st2.latents_shape, (std::vector<int64_t>{2, 2, 1, 2, 2}));
    data::ArrayLmdb py(dir.file("pydb"));
    EXPECT_EQ(py.string_row("prompts", 0), "p one");
    EXPECT_TRUE(torch::equal(py.tensor_row("latents", 0), torch::arange(8.).view({2, 1, 2, 2})));
  }
  // A value without the batch dim of 1 is a clear error naming the prompt.
  core::save_torch_checkpoint(dir.file("bad.pt"), core::nested_dict({{"x", torch::zeros({2, 3})}}));
  testing::expect_error_contains([&] { data::read_shard(dir.file("bad.pt")); },
                                 {dir.file("bad.pt"), "'x'", "want [1, ...]"});
}

TEST(LmdbBuild, BadInputsAreClearErrors) {
  testing::TempDir dir;
  // Missing shard folder.
  testing::expect_error_contains([&] { data::list_shards({dir.file("nope")}); },
                                 {dir.file("nope"), "not found"});
  core::make_dirs(dir.file("empty"));
  testing::expect_error_contains([&] { data::list_shards({dir.file("empty")}); },
                                 {dir.file("empty"), "no shard files"});
  std::string out;
  int rc = testing::run_command(
      bin() + " lmdb build --out " + dir.file("o") + " --shards " + dir.file("nope"), &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, "shard folder or file not found")) << out;
  // Shards of different row shapes.
  data::write_shard(dir.file("a.safetensors"), {"p"}, torch::zeros({1, 2, 2}));
  data::write_shard(dir.file("b.safetensors"), {"q"}, torch::zeros({1, 2, 3}));
  testing::expect_error_contains(
      [&] {
        data::build_lmdb_from_shards({dir.file("a.safetensors"), dir.file("b.safetensors")},
                                     dir.file("o"));
      },
      {dir.file("b.safetensors"), "[2, 3]", "[2, 2]"});
  EXPECT_FALSE(fs::exists(dir.file("o")));
  // A safetensors that is not a shard.
  core::save_safetensors(dir.file("w.safetensors"), {{"x", torch::zeros({2})}});
  testing::expect_error_contains([&] { data::read_shard(dir.file("w.safetensors")); },
                                 {dir.file("w.safetensors"), "not a latent shard"});
  // Unwritable output (its parent is a regular file).
  core::write_file_atomic(dir.file("file"), "x");
  testing::expect_error_contains(
      [&] { data::build_lmdb_from_shards({dir.file("a.safetensors")}, dir.file("file/db")); },
      {dir.file("file/db")});
  // LMDB without a shape key, and with a short row.
  {
    data::LmdbWriter w(dir.file("noshape"));
    w.put("latents_0_data", std::string(8, '\0'));
    w.commit();
  }
  rc = testing::run_command(bin() + " lmdb info " + dir.file("noshape"), &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, "_shape")) << out;
  {
    data::LmdbWriter w(dir.file("short"));
    w.put("latents_shape", "1 2 2");
    w.put("latents_0_data", std::string(6, '\0'));  // 4 float16 = 8 bytes wanted
    w.commit();
  }
  rc = testing::run_command(bin() + " lmdb info " + dir.file("short"), &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, "latents_0_data")) << out;
  rc = testing::run_command(bin() + " lmdb info " + dir.file("nothere"), &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, "not found")) << out;
}

// A lavfi test video of w x h at `rate` fps for `seconds`.
void make_video(const std::string& path, int w, int h, int rate, double seconds) {
  std::string out;
  int rc = testing::run_command(
      "ffmpeg -loglevel error -y -f lavfi -i testsrc=size=" + std::to_string(w) + "x" +
          std::to_string(h) + ":rate=" + std::to_string(rate) + " -t " + std::to_string(seconds) +
          " -pix_fmt yuv420p " + path,
      &out);
  ASSERT_EQ(rc, 0) << out;
}

TEST(Preprocess, KeepsSixteenByNineAndCounts) {
  testing::TempDir dir;
  core::make_dirs(dir.file("in"));
  make_video(dir.file("in/wide.mp4"), 64, 36, 25, 1.2);               // 16:9: processed
  make_video(dir.file("in/square.mp4"), 48, 36, 25, 1.2);             // 4:3: skipped
  make_video(dir.file("in/short.mp4"), 64, 36, 25, 0.2);              // 16:9 but too short
  core::write_file_atomic(dir.file("in/broken.mp4"), "not a video");  // failed
  fs::create_symlink("loop.mp4", dir.file("in/loop.mp4"));  // a symlink loop: one failure
  std::string out;
  const std::string cmd = bin() + " preprocess --input " + dir.file("in") + " --output " +
                          dir.file("out") + " --width 32 --height 18 --fps 16 --frames 9 --jobs 2";
  // Two videos failed: a non-zero exit (the others are written) and the list beside the output.
  int rc = testing::run_command(cmd, &out);
  ASSERT_EQ(rc, 1) << out;
  EXPECT_TRUE(contains(out, "processed 1, skipped 2, failed 2 (of 5 videos)")) << out;
  EXPECT_TRUE(contains(out, "2 items failed; the list is in " + dir.file("out/failures.txt")))
      << out;
  auto failures = core::read_failures(dir.file("out/failures.txt"));
  ASSERT_EQ(failures.size(), 2u) << out;
  EXPECT_EQ(failures[0].item, dir.file("in/broken.mp4"));
  EXPECT_EQ(failures[1].item, dir.file("in/loop.mp4"));
  EXPECT_TRUE(contains(failures[1].reason, "symbolic links")) << failures[1].reason;
  EXPECT_TRUE(contains(out, "not 16:9 (48x36)")) << out;
  EXPECT_TRUE(contains(out, "too short")) << out;
  auto info = data::probe_video(dir.file("out/wide.mp4"));
  EXPECT_EQ(info.width, 32);
  EXPECT_EQ(info.height, 18);
  EXPECT_NEAR(info.fps, 16.0, 1e-6);
  EXPECT_EQ(data::read_video(dir.file("out/wide.mp4")).size(0), 9);
  EXPECT_FALSE(fs::exists(dir.file("out/square.mp4")));
  // Rerun: the existing output is skipped (resumable), the failures are listed again.
  rc = testing::run_command(cmd, &out);
  ASSERT_EQ(rc, 1) << out;
  EXPECT_TRUE(contains(out, "processed 0, skipped 3, failed 2")) << out;
  EXPECT_EQ(core::read_failures(dir.file("out/failures.txt")).size(), 2u);
  // The bad inputs removed: a clean rerun exits 0 and removes the stale list.
  fs::remove(dir.file("in/broken.mp4"));
  fs::remove(dir.file("in/loop.mp4"));
  rc = testing::run_command(cmd, &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "processed 0, skipped 3, failed 0")) << out;
  EXPECT_FALSE(fs::exists(dir.file("out/failures.txt")));
  // Missing input folder.
  rc = testing::run_command(
      bin() + " preprocess --input " + dir.file("nope") + " --output " + dir.file("o2"), &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, "video folder not found")) << out;
}

models::WanVAEConfig tiny_vae_config() {
  models::WanVAEConfig c;
  c.dim = 4;
  c.z_dim = 4;
  return c;
}

// The bad inputs of `causvid encode` (issue #5), on the videos, VAE and captions of
// Encode.TinyVaeShardsAndLmdb.
void expect_encode_bad_inputs(const testing::TempDir& dir) {
  std::string out;
  int rc = 0;
  // A video without a caption: an error before any work, naming the file.
  core::write_file_atomic(dir.file("caps2.json"), R"({"v0.mp4": "zero"})");
  rc = testing::run_command(bin() + " encode --videos " + dir.file("videos") + " --captions " +
                                dir.file("caps2.json") + " --config " + testing::source_dir() +
                                "/configs/tiny_ode.yaml --out " + dir.file("lat2") + " --vae " +
                                dir.file("vae.safetensors") +
                                " --vae-dim 4 --vae-z-dim 4 --frames 9",
                            &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, "no caption for 3 of 4 videos (v1.mp4, v2.mp4, v9.mp4)")) << out;
  EXPECT_FALSE(fs::exists(dir.file("lat2")));
  // Unwritable output.
  core::write_file_atomic(dir.file("file"), "x");
  rc = testing::run_command(bin() + " encode --videos " + dir.file("videos") + " --captions " +
                                dir.file("caps.json") + " --config " + testing::source_dir() +
                                "/configs/tiny_ode.yaml --out " + dir.file("file/lat") + " --vae " +
                                dir.file("vae.safetensors") +
                                " --vae-dim 4 --vae-z-dim 4 --frames 9",
                            &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, dir.file("file/lat"))) << out;
  // Bad captions file.
  core::write_file_atomic(dir.file("caps3.json"), R"(["v0.mp4"])");
  testing::expect_error_contains([&] { data::read_captions(dir.file("caps3.json")); },
                                 {dir.file("caps3.json"), "want an object"});
}

TEST(Encode, TinyVaeShardsAndLmdb) {
  testing::TempDir dir;
  OneThread one;
  torch::manual_seed(3);
  auto cfg = tiny_vae_config();
  models::WanVAEWrapper vae(cfg, torch::zeros({4}), torch::ones({4}));
  core::save_safetensors(dir.file("vae.safetensors"), core::state_dict(*vae.model()));
  core::make_dirs(dir.file("videos"));
  for (int i = 0; i < 3; ++i)
    data::write_video(dir.file("videos/v" + std::to_string(i) + ".mp4"),
                      torch::randint(0, 256, {9, 3, 16, 16}, torch::kUInt8));
  core::write_file_atomic(dir.file("videos/v9.mp4"), "garbage");  // unreadable: skipped
  core::write_file_atomic(dir.file("caps.json"),
                          R"({"v0.mp4": "zero", "v1.mp4": "one", "v2": "two", "v9.mp4": "nine"})");
  const std::string cmd = bin() + " encode --videos " + dir.file("videos") + " --captions " +
                          dir.file("caps.json") + " --config " + testing::source_dir() +
                          "/configs/tiny_ode.yaml --out " + dir.file("lat") + " --vae " +
                          dir.file("vae.safetensors") +
                          " --vae-dim 4 --vae-z-dim 4 --frames 9 --shard-size 2";
  std::string out;
  int rc = testing::run_command(cmd, &out);
  ASSERT_EQ(rc, 1) << out;  // one video failed
  EXPECT_TRUE(contains(out, "encoded 3, failed 1 (of 4 videos)")) << out;
  auto failures = core::read_failures(dir.file("lat/failures.txt"));
  ASSERT_EQ(failures.size(), 1u) << out;
  EXPECT_EQ(failures[0].item, dir.file("videos/v9.mp4"));
  // The shard holding v9 records it beside itself, so a rerun that skips the shard still
  // reports it.
  EXPECT_EQ(core::read_failures(dir.file("lat/latents_000001.failures.txt")).size(), 1u);
  EXPECT_FALSE(fs::exists(dir.file("lat/latents_000000.failures.txt")));
  auto s0 = data::read_shard(dir.file("lat/latents_000000.safetensors"));
  auto s1 = data::read_shard(dir.file("lat/latents_000001.safetensors"));
  EXPECT_EQ(s0.prompts, (std::vector<std::string>{"zero", "one"}));
  EXPECT_EQ(s1.prompts, (std::vector<std::string>{"two"}));  // by stem; v9 failed
  ASSERT_EQ(s0.latents.sizes(), (std::vector<int64_t>{2, 3, 4, 2, 2}));
  // Same as encoding the decoded video directly.
  auto px = data::read_video_float(dir.file("videos/v1.mp4"));
  auto want = vae.encode_to_latent(px.permute({1, 0, 2, 3}).unsqueeze(0))[0];
  EXPECT_TRUE(torch::allclose(s0.latents[1], want, 1e-5, 1e-5));
  // Into an LMDB of clean latents [N, F, C, H, W].
  rc = testing::run_command(bin() + " lmdb build --shards " + dir.file("lat") + " --out " +
                                dir.file("db") + " && " + bin() + " lmdb info " + dir.file("db"),
                            &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "latents: shape [3, 3, 4, 2, 2]")) << out;
  // Rerun: shards exist, nothing is redone, the earlier failure is still reported.
  const auto shard0_time = fs::last_write_time(dir.file("lat/latents_000000.safetensors"));
  rc = testing::run_command(cmd, &out);
  ASSERT_EQ(rc, 1) << out;
  EXPECT_TRUE(contains(out, "2 existing")) << out;
  failures = core::read_failures(dir.file("lat/failures.txt"));
  ASSERT_EQ(failures.size(), 1u) << out;
  EXPECT_TRUE(contains(failures[0].reason, "(earlier run; delete ")) << failures[0].reason;
  EXPECT_EQ(fs::last_write_time(dir.file("lat/latents_000000.safetensors")), shard0_time);
  // The bad video fixed (removed) and its shard deleted: only that shard is redone, exit 0,
  // and the stale lists are gone.
  fs::remove(dir.file("videos/v9.mp4"));
  fs::remove(dir.file("lat/latents_000001.safetensors"));
  rc = testing::run_command(cmd, &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "encoded 1, failed 0 (of 3 videos)")) << out;
  EXPECT_FALSE(fs::exists(dir.file("lat/failures.txt")));
  EXPECT_FALSE(fs::exists(dir.file("lat/latents_000001.failures.txt")));
  EXPECT_EQ(fs::last_write_time(dir.file("lat/latents_000000.safetensors")), shard0_time);
  core::write_file_atomic(dir.file("videos/v9.mp4"), "garbage");  // as the tests below expect

  expect_encode_bad_inputs(dir);
}

struct TinyOdeSetup {
  testing::TempDir dir;
  std::vector<std::string> prompts = {"a red ball", "a blue cube", "a green cone"};
  std::string teacher, cache, prompts_file;
  TinyOdeSetup() {
    torch::manual_seed(11);
    models::WanModel net(models::WanConfig::preset("tiny"));
    teacher = dir.file("teacher.safetensors");
    core::save_safetensors(teacher, core::state_dict(*net));
    // A prompt cache of the tiny preset's text size (text_len 16, text_dim 48).
    cache = dir.file("cache");
    data::PromptCacheWriter w(cache, 16, 48, torch::kFloat32, "random", "none");
    std::vector<std::string> all = prompts;
    all.push_back("blurry");
    w.add(all, torch::randn({4, 16, 48}), {5, 7, 16, 3});
    w.finish();
    prompts_file = dir.file("prompts.txt");
    core::write_file_atomic(prompts_file, "a red ball\na blue cube\na green cone\n");
  }
  // The teacher's 50-step trajectory (CFG 6 on "blurry", grid `shift`) of `prompt` from noise
  // seeded `seed`, at the trajectory points `keep`: what ode-pairs must store.
  torch::Tensor trajectory(const std::string& prompt, int64_t seed, double shift,
                           const std::vector<int64_t>& keep) const {
    c10::InferenceMode g;
    OneThread one;
    models::WanModel net(models::WanConfig::preset("tiny"));
    core::load_state_dict(*net, core::load_safetensors(teacher));
    net->eval();
    models::WanDiffusionWrapper w(net, false, 1, shift);
    data::PromptCache pc(cache);
    auto gen = at::detail::createCPUGenerator(seed);
    auto noise = torch::randn({1, 3, 4, 8, 8}, gen, torch::kFloat);
    auto tr = inference::sample_teacher(w, noise, pc.encode({prompt}), pc.encode({"blurry"}), 50,
                                        6.0, shift);
    return tr.trajectory[0].index_select(0, torch::tensor(keep));
  }
  std::string cmd(const std::string& out, const std::string& extra = "") const {
    return bin() + " ode-pairs --config " + testing::source_dir() +
           "/configs/tiny_ode.yaml --set negative_prompt=blurry --prompts " + prompts_file +
           " --out " + out + " --teacher " + teacher + " --prompt-cache " + cache +
           " --shard-size 2 " + extra;
  }
};

TEST(OdePairs, TinyTeacherTrajectoriesResumableAndRankIndependent) {
  TinyOdeSetup t;
  std::string out;
  int rc = testing::run_command(t.cmd(t.dir.file("ode")), &out);
  ASSERT_EQ(rc, 0) << out;
  auto s0 = data::read_shard(t.dir.file("ode/ode_pairs_000000.safetensors"));
  auto s1 = data::read_shard(t.dir.file("ode/ode_pairs_000001.safetensors"));
  EXPECT_EQ(s0.prompts, (std::vector<std::string>{"a red ball", "a blue cube"}));
  EXPECT_EQ(s1.prompts, (std::vector<std::string>{"a green cone"}));
  ASSERT_EQ(s0.latents.sizes(), (std::vector<int64_t>{2, 4, 3, 4, 8, 8}));

  // Row 1 is the teacher's trajectory from noise seeded 0 + 1 at [0, 36, 44, 50].
  {
    auto want = t.trajectory("a blue cube", 1, 8.0, {0, 36, 44, 50});
    EXPECT_TRUE(torch::allclose(s0.latents[1], want, 1e-5, 1e-5))
        << (s0.latents[1] - want).abs().max();
    auto gen = at::detail::createCPUGenerator(1);
    EXPECT_TRUE(torch::equal(s0.latents[1][0], torch::randn({1, 3, 4, 8, 8}, gen, torch::kFloat)[0]));
  }

  // Resumable: existing shards are skipped; a removed shard is regenerated identically.
  const auto bytes1 = core::read_file(t.dir.file("ode/ode_pairs_000001.safetensors"));
  fs::remove(t.dir.file("ode/ode_pairs_000001.safetensors"));
  rc = testing::run_command(t.cmd(t.dir.file("ode")), &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "1 shards written, 1 existing")) << out;
  EXPECT_EQ(core::read_file(t.dir.file("ode/ode_pairs_000001.safetensors")), bytes1);

  // Two ranks (torchrun-style launch): same files.
  rc = testing::run_command(
      "CAUSVID_DIST_TIMEOUT_MS=20000 CAUSVID_NUM_THREADS=1 " + testing::source_dir() +
          "/launch/local.sh -n 2 -- " +
          t.cmd(t.dir.file("ode2")).substr(bin().size() - testing::causvid_binary().size()),
      &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "ode pairs for 3 prompts, failed 0 (of 3)")) << out;
  for (const char* f : {"ode_pairs_000000.safetensors", "ode_pairs_000001.safetensors"})
    EXPECT_EQ(core::read_file(t.dir.file(std::string("ode2/") + f)),
              core::read_file(t.dir.file(std::string("ode/") + f)))
        << f;

  // Into an ODE-pair LMDB [N, S, F, C, H, W].
  rc =
      testing::run_command(bin() + " lmdb build --shards " + t.dir.file("ode") + " --out " +
                               t.dir.file("db") + " && " + bin() + " lmdb info " + t.dir.file("db"),
                           &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "latents: shape [3, 4, 3, 4, 8, 8]")) << out;
  EXPECT_TRUE(contains(out, "first prompt: a red ball")) << out;
}

// The kept points are the ones whose timesteps carry the step list on the sampling grid:
// CausVid's [0, 36, 44, -1] at shift 8; at the toy's shift 3 the same indices would be the
// points at t = 538 and 290, labelled 757 and 522 by the causal ODE stage.
TEST(OdePairs, KeepFollowsTheStepListOnTheGrid) {
  const auto list = torch::tensor({1000.f, 757.f, 522.f, 0.f});
  double err = -1;
  EXPECT_EQ(inference::keep_for_step_list(list, 50, 8.0, &err), (std::vector<int64_t>{0, 36, 44, -1}));
  EXPECT_LT(err, 1.0);
  EXPECT_EQ(inference::keep_for_step_list(list.slice(0, 0, 3), 50, 8.0),
            (std::vector<int64_t>{0, 36, 44, -1}));  // the clean end appended
  EXPECT_EQ(inference::keep_for_step_list(list, 50, 3.0, &err), (std::vector<int64_t>{0, 25, 37, -1}));
  EXPECT_LT(err, 10.0);
  const auto grid = models::FlowMatchScheduler::wan_sampling(50, 3.0).timesteps;
  EXPECT_NEAR(grid[36].item<double>(), 538.5, 0.1);  // what index 36 holds at shift 3
  EXPECT_NEAR(grid[25].item<double>(), 750.0, 0.1);

  // The command: by default the config's list on its grid, at any shift; an explicit --keep
  // that labels other noise levels is written as asked, and named.
  TinyOdeSetup t;
  std::string out;
  int rc = testing::run_command(t.cmd(t.dir.file("k3"), "--set scheduler_shift=3"), &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "keep 0,25,37,-1")) << out;
  EXPECT_FALSE(contains(out, "other trajectory points")) << out;
  rc = testing::run_command(t.cmd(t.dir.file("k3b"), "--set scheduler_shift=3 --keep 0,36,44,-1"),
                            &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(contains(out, "--keep 0,36,44,-1 stores other trajectory points than 0,25,37,-1"))
      << out;
  auto want = t.trajectory("a red ball", 0, 3.0, {0, 25, 37, 50});
  auto got = data::read_shard(t.dir.file("k3/ode_pairs_000000.safetensors")).latents[0];
  EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5)) << (got - want).abs().max();
}

TEST(OdePairs, FlagsAndBadInputs) {
  TinyOdeSetup t;
  std::string out;
  // Fewer steps and other kept points.
  int rc = testing::run_command(t.cmd(t.dir.file("o1"), "--steps 4 --keep 0,2,-1"), &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(data::read_shard(t.dir.file("o1/ode_pairs_000000.safetensors")).latents.size(1), 3);
  rc = testing::run_command(t.cmd(t.dir.file("o2"), "--steps 4 --keep 0,5"), &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, "--keep: index 5 outside the 5 trajectory points")) << out;
  // A prompt missing from the cache names the prompt.
  rc = testing::run_command(bin() + " ode-pairs --config " + testing::source_dir() +
                                "/configs/tiny_ode.yaml --set negative_prompt=unknown --prompts " +
                                t.prompts_file + " --out " + t.dir.file("o3") + " --teacher " +
                                t.teacher + " --prompt-cache " + t.cache + " --steps 2 --keep 0",
                            &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, "'unknown'")) << out;
  // A prompt that fails (not in the cache) is listed; the others are written (issue #14).
  core::write_file_atomic(t.dir.file("p2.txt"), "a red ball\nnot cached\n");
  const std::string cmd5 = bin() + " ode-pairs --config " + testing::source_dir() +
                           "/configs/tiny_ode.yaml --set negative_prompt=blurry --prompts " +
                           t.dir.file("p2.txt") + " --out " + t.dir.file("o5") + " --teacher " +
                           t.teacher + " --prompt-cache " + t.cache + " --steps 2 --keep 0";
  rc = testing::run_command(cmd5, &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_TRUE(contains(out, "ode pairs for 1 prompts, failed 1 (of 2)")) << out;
  auto failures = core::read_failures(t.dir.file("o5/failures.txt"));
  ASSERT_EQ(failures.size(), 1u) << out;
  EXPECT_EQ(failures[0].item, "prompt 1: not cached");
  EXPECT_EQ(data::read_shard(t.dir.file("o5/ode_pairs_000000.safetensors")).prompts,
            (std::vector<std::string>{"a red ball"}));
  rc = testing::run_command(cmd5, &out);  // resumed: the shard is kept, the failure reported
  EXPECT_EQ(rc, 1) << out;
  failures = core::read_failures(t.dir.file("o5/failures.txt"));
  ASSERT_EQ(failures.size(), 1u) << out;
  EXPECT_TRUE(contains(failures[0].reason, "(earlier run; delete ")) << failures[0].reason;
  // Teacher of another size.
  rc = testing::run_command(t.cmd(t.dir.file("o4"), "--set model_dim=32 --steps 2 --keep 0"), &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, t.teacher)) << out;
  // Unwritable output.
  core::write_file_atomic(t.dir.file("file"), "x");
  rc = testing::run_command(t.cmd(t.dir.file("file/o"), "--steps 2 --keep 0"), &out);
  EXPECT_EQ(rc, 1);
  EXPECT_TRUE(contains(out, t.dir.file("file/o"))) << out;
}

}  // namespace
}  // namespace causvid
