// tests/inference/generate_test.cpp: inference/generate.h and `causvid generate` on a tiny
// random model (dim 64, 2 layers, 4 latent channels, 8x8 latents) and a tiny random VAE.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/fs.h"
#include "core/safetensors.h"
#include "core/state_dict.h"
#include "data/image_io.h"
#include "data/video_io.h"
#include "inference/generate.h"
#include "models/wan/wan_config.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using inference::GenerateOptions;
using inference::SampleSpec;
using inference::VideoGenerator;
using testing::expect_error_contains;
using testing::TempDir;

// Tiny tensors make thousands of small ops; on a shared, oversubscribed machine each OpenMP
// parallel region can stall, so these tests run single-threaded (as wan_vae_test.cpp).
class OneThread {
 public:
  OneThread() : n_(at::get_num_threads()) { at::set_num_threads(1); }
  ~OneThread() { at::set_num_threads(n_); }

 private:
  int n_;
};

models::WanModel tiny_model(uint64_t seed = 0) {
  models::WanModel m(models::WanConfig::preset("tiny"));
  m->init_weights(seed);
  torch::NoGradGuard ng;
  torch::manual_seed(seed);
  m->head->head->weight.normal_(0, 0.02);
  return m;
}

std::unique_ptr<models::WanVAEWrapper> tiny_vae() {
  torch::manual_seed(1);
  models::WanVAEConfig c;
  c.dim = 4;
  c.z_dim = 4;
  return std::make_unique<models::WanVAEWrapper>(c, torch::zeros({4}), torch::ones({4}));
}

GenerateOptions tiny_options() {
  GenerateOptions o;
  o.num_frames = 6;
  o.latent_height = o.latent_width = 8;
  o.num_frame_per_block = 3;
  o.preview_scale = 2;
  o.quiet = true;
  return o;
}

std::unique_ptr<VideoGenerator> make_gen(const GenerateOptions& o, bool vae = false) {
  auto cfg = models::WanConfig::preset("tiny");
  return std::make_unique<VideoGenerator>(
      tiny_model(), std::make_unique<inference::HashTextConditioner>(cfg.text_len, cfg.text_dim),
      vae ? tiny_vae() : nullptr, o);
}

SampleSpec spec(const std::string& prompt, int64_t seed = 7) {
  SampleSpec s;
  s.prompt = prompt;
  s.seed = seed;
  return s;
}

// ------------------------------------------------------------------ schedule + helpers

TEST(PromptSchedule, ParsesBlocksAndSeconds) {
  auto e = inference::parse_prompt_schedule("# comment\n0: a cat\n\n2: a dog: running\n", "s.txt");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[1].prompt, "a dog: running");
  EXPECT_EQ(e[1].start, 2);
  auto segs = inference::resolve_schedule(e, 16, 4, 3, "s.txt");
  EXPECT_EQ(segs[1].start_block, 2);
  // 1.5 s = pixel 24 -> latent 6 -> block 2; 3 s = pixel 48 -> latent 12 -> block 4.
  auto s = inference::parse_prompt_schedule("0s: a\n1.5s: b\n3s: c\n", "t.txt");
  auto r = inference::resolve_schedule(s, 16, 4, 3, "t.txt");
  EXPECT_EQ(r[1].start_block, 2);
  EXPECT_EQ(r[2].start_block, 4);
}

TEST(PromptSchedule, BadInputs) {
  expect_error_contains([] { inference::parse_prompt_schedule("0: a\nno colon here\n", "f.txt"); },
                        {"f.txt:2", "unparsable"});
  expect_error_contains([] { inference::parse_prompt_schedule("0: a\nx2: b\n", "f.txt"); },
                        {"f.txt:2", "unparsable start"});
  expect_error_contains([] { inference::parse_prompt_schedule("0: a\n3: b\n2: c\n", "f.txt"); },
                        {"f.txt:3", "must increase"});
  expect_error_contains([] { inference::parse_prompt_schedule("1: a\n", "f.txt"); },
                        {"f.txt:1", "want 0"});
  expect_error_contains([] { inference::parse_prompt_schedule("0: a\n2s: b\n", "f.txt"); },
                        {"mixes"});
  expect_error_contains([] { inference::parse_prompt_schedule("0:\n", "f.txt"); },
                        {"empty prompt"});
  // 1 s = pixel 16 -> latent frame 4: inside block 1 (frames 3..5) of 3-frame blocks.
  auto inside = inference::parse_prompt_schedule("0s: a\n1s: b\n", "h.txt");
  expect_error_contains([&] { inference::resolve_schedule(inside, 16, 4, 3, "h.txt"); },
                        {"h.txt:2", "inside block 1", "0.75s", "1.5s"});
  auto s = inference::parse_prompt_schedule("0s: a\n0.01s: b\n", "g.txt");
  expect_error_contains([&] { inference::resolve_schedule(s, 16, 4, 3, "g.txt"); },
                        {"g.txt:2", "same block"});
  // Invalid UTF-8 is refused as in prompt files, naming the line.
  expect_error_contains([] { inference::parse_prompt_schedule("0: a\n3: b\xC0\xAF\n", "u.txt"); },
                        {"u.txt:2", "invalid UTF-8", "byte 4"});
  // An entry past the end of the video (here 7 blocks) would never be used: refused.
  auto past = inference::parse_prompt_schedule("0: a\n3: b\n7: c\n", "p.txt");
  EXPECT_EQ(inference::resolve_schedule(past, 16, 4, 3, "p.txt", 8).size(), 3u);
  expect_error_contains([&] { inference::resolve_schedule(past, 16, 4, 3, "p.txt", 7); },
                        {"p.txt:3", "block 7", "past the end of the video (7 blocks"});
  expect_error_contains([] { inference::read_prompt_schedule("/nonexistent/sched.txt"); },
                        {"does not exist"});
}

TEST(Generate, SafeFilename) {
  EXPECT_EQ(inference::safe_filename("A cat, on a mat!"), "A_cat_on_a_mat");
  EXPECT_EQ(inference::safe_filename("../../etc/passwd"), "etc_passwd");
  EXPECT_EQ(inference::safe_filename("   "), "prompt");
  EXPECT_EQ(inference::safe_filename("\xe4\xb8\xad\xe6\x96\x87"), "prompt");
  EXPECT_LE(inference::safe_filename(std::string(500, 'x')).size(), 80u);
}

// ------------------------------------------------------------------ causal generation

TEST(Generate, CausalWritesMp4AndLatentsDeterministically) {
  OneThread one_thread;
  TempDir d;
  auto o = tiny_options();
  std::vector<int64_t> seen;  // frames readable from the streamed file after each block
  const std::string path = d.file("a.mp4");
  o.on_block = [&](int64_t, int64_t written) {
    seen.push_back(data::read_video(path).size(0));
    EXPECT_EQ(seen.back(), written);
  };
  auto g = make_gen(o);
  auto s = spec("a red ball");
  s.out_path = path;
  s.latents_out = d.file("a.safetensors");
  auto r = g->generate(s);
  EXPECT_EQ(seen, (std::vector<int64_t>{3, 6}));
  g->options_mut().on_block = nullptr;
  EXPECT_EQ(r.latents.sizes(), (std::vector<int64_t>{6, 4, 8, 8}));
  EXPECT_EQ(r.block_s.size(), 2u);
  EXPECT_GT(r.first_frame_s, 0);
  EXPECT_EQ(r.pixel_frames, 6);  // preview: one frame per latent frame
  auto v = data::read_video(s.out_path);
  EXPECT_EQ(v.size(0), 6);
  EXPECT_EQ(v.size(2), 16);
  auto saved = core::load_safetensors(s.latents_out).at("latents");
  EXPECT_TRUE(torch::equal(saved, r.latents));
  auto r2 = g->generate(spec("a red ball"));
  EXPECT_TRUE(torch::equal(r.latents, r2.latents));
  auto r3 = g->generate(spec("a red ball", 8));
  EXPECT_FALSE(torch::equal(r.latents, r3.latents));
  EXPECT_TRUE(torch::isfinite(r.latents).all().item<bool>());
}

TEST(Generate, RollingCacheWithLargeWindowEqualsFullCache) {
  OneThread one_thread;
  auto o = tiny_options();
  o.num_frames = 9;
  auto full = make_gen(o)->generate(spec("x"));
  o.window_frames = 9;
  auto roll = make_gen(o)->generate(spec("x"));
  EXPECT_LT((full.latents - roll.latents).abs().max().item<double>(), 1e-5);
  o.window_frames = 3;  // evicting: runs at constant cache size for any length
  o.sink_frames = 3;
  o.num_frames = 15;
  auto g = make_gen(o);
  auto r = g->generate(spec("x"));
  EXPECT_EQ(r.latents.size(0), 15);
  EXPECT_TRUE(torch::isfinite(r.latents).all().item<bool>());
  EXPECT_FALSE(torch::allclose(r.latents.slice(0, 0, 9), full.latents));  // window bites
}

TEST(Generate, LongVideoRolloutContinuesFromTheOverlap) {
  OneThread one_thread;
  auto o = tiny_options();
  auto one = make_gen(o)->generate(spec("x"));
  o.num_rollout = 2;
  o.num_overlap_frames = 3;
  auto two = make_gen(o)->generate(spec("x"));
  // Each rollout keeps F - K latent frames; rollout 2 starts from rollout 1's last K.
  ASSERT_EQ(two.latents.size(0), 2 * (6 - 3));
  EXPECT_TRUE(torch::equal(two.latents.slice(0, 0, 3), one.latents.slice(0, 0, 3)));
  EXPECT_TRUE(torch::equal(two.latents.slice(0, 3, 6), one.latents.slice(0, 3, 6)));
  auto bad = o;
  bad.num_overlap_frames = 2;
  expect_error_contains([&] { make_gen(bad)->generate(spec("x")); }, {"--num-overlap-frames"});
}

TEST(Generate, DynamicPromptSwitchesAtTheBlock) {
  OneThread one_thread;
  auto o = tiny_options();
  auto g = make_gen(o);
  auto a = g->generate(spec("a cat"));
  auto s = spec("unused");
  s.schedule = inference::parse_prompt_schedule("0: a cat\n1: a dog\n", "sched");
  auto sw = g->generate(s);
  EXPECT_TRUE(torch::equal(sw.latents.slice(0, 0, 3), a.latents.slice(0, 0, 3)));
  EXPECT_FALSE(torch::allclose(sw.latents.slice(0, 3, 6), a.latents.slice(0, 3, 6)));
}

TEST(Generate, KvRecacheRebuildsThePastUnderTheNewPrompt) {
  OneThread one_thread;
  for (int64_t window : {int64_t{-1}, int64_t{3}}) {
    auto o = tiny_options();
    o.num_frames = 12;  // 4 blocks
    o.window_frames = window;
    o.sink_frames = window > 0 ? 3 : 0;
    auto plain = make_gen(o)->generate(spec("a cat"));
    auto s = spec("unused");
    // A "switch" to the same prompt: re-caching the clean frames under it rebuilds the cache
    // the blocks wrote, so the video is the unswitched one, bit for bit.
    s.schedule = inference::parse_prompt_schedule("0: a cat\n3: a cat\n", "same");
    o.recache = true;
    auto same = make_gen(o)->generate(s);
    EXPECT_TRUE(torch::equal(same.latents, plain.latents)) << "window " << window;
    // A real switch: the blocks before it are unchanged, after it recache and refresh differ.
    s.schedule = inference::parse_prompt_schedule("0: a cat\n2: a dog\n", "sched");
    auto re = make_gen(o)->generate(s);
    o.recache = false;
    auto fresh = make_gen(o)->generate(s);
    EXPECT_TRUE(torch::equal(re.latents.slice(0, 0, 6), plain.latents.slice(0, 0, 6)));
    EXPECT_TRUE(torch::equal(fresh.latents.slice(0, 0, 6), plain.latents.slice(0, 0, 6)));
    EXPECT_FALSE(torch::allclose(re.latents.slice(0, 6, 12), fresh.latents.slice(0, 6, 12)))
        << "re-caching changed nothing (window " << window << ")";
  }
}

TEST(Generate, BidirectionalAndTeacherModes) {
  OneThread one_thread;
  auto o = tiny_options();
  o.mode = "bidirectional";
  auto b = make_gen(o)->generate(spec("x"));
  EXPECT_EQ(b.latents.sizes(), (std::vector<int64_t>{6, 4, 8, 8}));
  o.mode = "teacher";
  o.teacher_steps = 3;
  o.guidance_scale = 3;
  o.negative_prompt = "blurry";
  auto t = make_gen(o)->generate(spec("x"));
  EXPECT_TRUE(torch::isfinite(t.latents).all().item<bool>());
  auto s = spec("x");
  s.schedule = inference::parse_prompt_schedule("0: a\n", "s");
  expect_error_contains([&] { make_gen(o)->generate(s); }, {"--mode causal"});
}

// ------------------------------------------------------------------ i2v / v2v (tiny VAE)

TEST(Generate, ImageToVideoUsesTheImageLatentAsFirstFrame) {
  OneThread one_thread;
  TempDir d;
  auto o = tiny_options();
  auto g = make_gen(o, /*vae=*/true);
  auto img = (torch::rand({3, 64, 64}) * 255).to(torch::kUInt8);
  data::write_png(d.file("img.png"), img);
  auto s = spec("x");
  s.image = d.file("img.png");
  s.out_path = d.file("i2v.mp4");
  auto r = g->generate(s);
  ASSERT_EQ(r.latents.size(0), 7);  // image frame + 6 generated
  auto enc = g->vae()->encode_to_latent(
      data::read_image_float(s.image).unsqueeze(0).unsqueeze(2));
  EXPECT_LT((r.latents[0] - enc[0][0]).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(r.pixel_frames, 1 + 4 * 6);
  EXPECT_EQ(data::read_video(s.out_path).size(0), 25);

  data::write_png(d.file("small.png"), img.slice(1, 0, 40));
  s.image = d.file("small.png");
  s.out_path = d.file("bad.mp4");
  expect_error_contains([&] { g->generate(s); }, {"--image", "64x40", "want 64x64", "--resize-image"});
  EXPECT_FALSE(std::filesystem::exists(s.out_path));
  g->options_mut().resize_image = true;
  EXPECT_EQ(g->generate(s).latents.size(0), 7);
}

TEST(Generate, VideoToVideoAndTooShortInput) {
  OneThread one_thread;
  TempDir d;
  auto o = tiny_options();
  o.v2v_timestep = 757;
  auto g = make_gen(o, /*vae=*/true);
  auto frames = (torch::rand({21, 3, 64, 64}) * 255).to(torch::kUInt8);
  data::write_video(d.file("in.mp4"), frames);
  auto s = spec("x");
  s.video = d.file("in.mp4");
  s.out_path = d.file("v2v.mp4");
  auto r = g->generate(s);
  EXPECT_EQ(r.latents.size(0), 6);
  EXPECT_EQ(data::read_video(s.out_path).size(0), 21);
  data::write_video(d.file("short.mp4"), frames.slice(0, 0, 10));
  s.video = d.file("short.mp4");
  s.out_path = d.file("short_out.mp4");
  expect_error_contains([&] { g->generate(s); }, {"--video", "10 frames", "at least 21"});
  EXPECT_FALSE(std::filesystem::exists(s.out_path));
}

TEST(Generate, LoadVaeReadsSizesAndStatisticsFromTheFile) {
  OneThread one_thread;
  TempDir d;
  auto v = tiny_vae();
  auto sd = core::state_dict(*v->model());
  sd["latent_mean"] = torch::full({4}, 0.5);
  sd["latent_std"] = torch::full({4}, 2.0);
  core::save_safetensors(d.file("vae.safetensors"), sd);
  auto l = inference::load_vae(d.file("vae.safetensors"));
  EXPECT_EQ(l->model()->config().dim, 4);
  EXPECT_EQ(l->model()->config().z_dim, 4);
  EXPECT_TRUE(torch::equal(l->mean(), torch::full({4}, 0.5)));
  auto x = torch::rand({1, 3, 1, 16, 16}) * 2 - 1;
  sd.erase("latent_mean");
  sd.erase("latent_std");
  core::save_safetensors(d.file("vae2.safetensors"), sd);
  auto l2 = inference::load_vae(d.file("vae2.safetensors"));
  EXPECT_TRUE(torch::allclose(l2->encode_to_latent(x), v->encode_to_latent(x)));
  core::save_safetensors(d.file("notvae.safetensors"), {{"x", torch::zeros({1})}});
  expect_error_contains([&] { inference::load_vae(d.file("notvae.safetensors")); },
                        {"not a Wan VAE"});
  expect_error_contains([&] { inference::load_vae(d.file("none.pth")); }, {"does not exist"});
}

// ------------------------------------------------------------------ bad inputs

TEST(Generate, BadInputsGiveClearErrors) {
  OneThread one_thread;
  TempDir d;
  auto o = tiny_options();
  o.num_frames = 7;
  expect_error_contains([&] { make_gen(o)->generate(spec("x")); },
                        {"--num-frames", "not divisible by num_frame_per_block 3"});
  auto g = make_gen(tiny_options());
  auto s = spec("x");
  s.out_path = "/nonexistent_dir_xyz/out.mp4";
  expect_error_contains([&] { g->generate(s); }, {"does not exist"});
  s.out_path = d.path();
  expect_error_contains([&] { g->generate(s); }, {"is a directory"});
  s.out_path = d.file("o.mp4");
  s.image = d.file("missing.png");
  expect_error_contains([&] { g->generate(s); }, {"needs a VAE"});

  auto m = tiny_model();
  expect_error_contains([&] { inference::load_generator_weights(m, d.file("nope.pt")); },
                        {"--checkpoint", "does not exist"});
  core::save_safetensors(d.file("wrong.safetensors"), {{"foo", torch::zeros({2})}});
  expect_error_contains(
      [&] { inference::load_generator_weights(m, d.file("wrong.safetensors")); }, {"missing"});
  // A good checkpoint in CausVid's nesting loads; its critic entry is selectable.
  auto sd = core::state_dict(*tiny_model(3));
  core::TensorMap nested;
  for (auto& kv : sd) nested["generator.model." + kv.first] = kv.second;
  core::save_safetensors(d.file("model.safetensors"), nested);
  inference::load_generator_weights(m, d.file("model.safetensors"));
  EXPECT_TRUE(torch::equal(m->head->head->weight, sd.at("head.head.weight")));
  expect_error_contains(
      [&] { inference::load_generator_weights(m, d.file("model.safetensors"), "critic"); },
      {"no 'critic'"});
}

// ------------------------------------------------------------------ the CLI

class GenerateCli : public ::testing::Test {
 protected:
  void SetUp() override {
    core::save_safetensors(d.file("ckpt.safetensors"), core::state_dict(*tiny_model()));
    base = "CAUSVID_NUM_THREADS=1 " + testing::causvid_binary() + " generate --config " + testing::source_dir() +
           "/configs/tiny_dmd.yaml --set num_frame_per_block=3 --set "
           "image_or_video_shape=[1,6,4,8,8] --set vae_path=none --text-encoder hash "
           "--preview-scale 2 --quiet --checkpoint " +
           d.file("ckpt.safetensors");
  }
  TempDir d;
  std::string base;
};

TEST_F(GenerateCli, BatchOfPromptsWritesSafeNames) {
  core::write_file_atomic(d.file("p.txt"), "a cat / on a mat\nthe dog!\n");
  std::string out;
  ASSERT_EQ(testing::run_command(base + " --prompts " + d.file("p.txt") + " --out " +
                                     d.file("vids") + " --latents-out auto",
                                 &out),
            0)
      << out;
  EXPECT_TRUE(std::filesystem::exists(d.file("vids/0000-a_cat_on_a_mat.mp4"))) << out;
  EXPECT_TRUE(std::filesystem::exists(d.file("vids/0001-the_dog.mp4"))) << out;
  EXPECT_TRUE(std::filesystem::exists(d.file("vids/0001-the_dog.latents.safetensors")));
  EXPECT_NE(out.find("time to first frame"), std::string::npos) << out;
  EXPECT_NE(out.find("per-block latency"), std::string::npos) << out;
}

TEST_F(GenerateCli, BadScheduleAndCheckpointFailWithoutOutput) {
  core::write_file_atomic(d.file("s.txt"), "0: a\n3: b\n1: c\n");
  std::string out;
  EXPECT_NE(testing::run_command(base + " --prompt-schedule " + d.file("s.txt") + " --out " +
                                     d.file("s.mp4"),
                                 &out),
            0);
  EXPECT_NE(out.find("must increase"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(d.file("s.mp4")));
  EXPECT_NE(testing::run_command(base + " --prompt x --checkpoint " + d.file("none.pt") +
                                     " --out " + d.file("c.mp4"),
                                 &out),
            0);
  EXPECT_NE(out.find("does not exist"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(d.file("c.mp4")));
  EXPECT_NE(testing::run_command(base + " --prompt x --num-frames 5 --out " + d.file("n.mp4"),
                                 &out),
            0);
  EXPECT_NE(out.find("not divisible"), std::string::npos) << out;
  ASSERT_EQ(testing::run_command(base + " --help", &out), 0);
  for (const char* f : {"--window-frames", "--sink-frames", "--num-rollout", "--stream-raw",
                        "--prompt-schedule", "--image", "--video", "--mode"})
    EXPECT_NE(out.find(f), std::string::npos) << f;
}

TEST_F(GenerateCli, StreamRawWritesEveryFrame) {
  std::string out;
  ASSERT_EQ(testing::run_command(base + " --prompt x --out " + d.file("r.mp4") +
                                     " --stream-raw " + d.file("r.rgb"),
                                 &out),
            0)
      << out;
  EXPECT_EQ(std::filesystem::file_size(d.file("r.rgb")), 6u * 16 * 16 * 3);
  EXPECT_EQ(data::read_video(d.file("r.mp4")).size(0), 6);
}

}  // namespace
}  // namespace causvid

namespace causvid {
namespace {

// One sampler spec: `generate` and `eval toy` sample the same latents from the same checkpoint,
// seed and prompt (same step list and the config's timestep_shift; generate used to hard-code
// shift 8 while the toy configs train on 3).
TEST(SamplerSpec, GenerateSamplesTheSameLatentsAsEvalToy) {
  testing::TempDir dir;
  const std::string bin = testing::causvid_binary(), src = testing::source_dir();
  const std::string cfg = src + "/configs/toy/causal_dmd.yaml";
  const std::string ckpt = src + "/assets/toy_teacher.safetensors";
  const std::string prompt = "a large red square moving left";
  core::write_file_atomic(dir.file("p.txt"), prompt + "\n");
  std::string out;
  ASSERT_EQ(testing::run_command(
                bin + " generate --config " + cfg + " --checkpoint " + ckpt +
                    " --no-vae --quiet --seed 5 --device cpu --dtype fp32 --prompt '" + prompt +
                    "' --out " + dir.file("g.mp4") + " --latents-out " + dir.file("g.safetensors") +
                    " 2>&1",
                &out),
            0)
      << out;
  ASSERT_EQ(testing::run_command(bin + " eval toy --config " + cfg + " --checkpoint " + ckpt +
                                     " --sampler causal --seed 5 --batch 1 --prompts " +
                                     dir.file("p.txt") + " --save-latents " +
                                     dir.file("e.safetensors") + " 2>&1",
                                 &out),
            0)
      << out;
  auto g = core::load_safetensors(dir.file("g.safetensors")).at("latents").to(torch::kFloat32);
  auto e = core::load_safetensors(dir.file("e.safetensors")).at("latents")[0].to(torch::kFloat32);
  ASSERT_EQ(g.sizes(), e.sizes());
  // eval toy stores fp16 (rounding <= 2^-11 relative: 4.9e-4 measured); sampling generate on
  // shift 8 instead of the config's 3 differs by 8.3e-3.
  EXPECT_LT((g - e).abs().max().item<double>(), 1e-3 * std::max(1.0, g.abs().max().item<double>()));
}

}  // namespace
}  // namespace causvid

namespace causvid {
namespace {

// generate --lora: the extracted LoRA of a tuned model, merged into the base, generates what
// the tuned model generates; a LoRA of another model size is refused before any output.
TEST_F(GenerateCli, LoraMergedIntoTheBaseGeneratesLikeTheTunedModel) {
  auto sd = core::state_dict(*tiny_model());
  for (auto& kv : sd) kv.second = kv.second.clone();
  torch::manual_seed(11);
  auto& w = sd.at("blocks.0.self_attn.q.weight");
  w += 0.5 * torch::randn({w.size(0), 1}) * torch::randn({1, w.size(1)});
  sd.at("blocks.1.modulation") += 0.05;
  core::save_safetensors(d.file("tuned.safetensors"), sd);
  const std::string bin = testing::causvid_binary();
  std::string out;
  ASSERT_EQ(testing::run_command(bin + " lora extract --base " + d.file("ckpt.safetensors") +
                                     " --tuned " + d.file("tuned.safetensors") +
                                     " --rank 2 --out " + d.file("l.safetensors"),
                                 &out),
            0)
      << out;
  EXPECT_NE(out.find("retained energy mean 1.0000"), std::string::npos) << out;
  auto run = [&](const std::string& extra, const std::string& dir) {
    return testing::run_command(base + extra + " --prompt cat --seed 3 --out " + d.file(dir) +
                                    " --latents-out auto --no-stream",
                                &out);
  };
  ASSERT_EQ(run(" --lora " + d.file("l.safetensors") + ":1", "a"), 0) << out;
  EXPECT_NE(out.find("merged at scale 1"), std::string::npos) << out;
  const std::string tuned_base = base;
  base.replace(base.find(d.file("ckpt.safetensors")), d.file("ckpt.safetensors").size(),
               d.file("tuned.safetensors"));
  ASSERT_EQ(run("", "b"), 0) << out;
  auto la = core::load_safetensors(d.file("a/0000-cat.latents.safetensors"));
  auto lb = core::load_safetensors(d.file("b/0000-cat.latents.safetensors"));
  ASSERT_EQ(la.size(), 1u);
  EXPECT_TRUE(torch::allclose(la.begin()->second, lb.begin()->second, 1e-4, 1e-5));
  base = tuned_base;
  EXPECT_EQ(run(" --lora " + testing::source_dir() +
                    "/tests/fixtures/lora_wan_dit_comfyui_all_r4/lora.safetensors",
                "c"),
            1);
  EXPECT_NE(out.find("do not fit the model"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(d.file("c/0000-cat.mp4")));
}

}  // namespace
}  // namespace causvid
