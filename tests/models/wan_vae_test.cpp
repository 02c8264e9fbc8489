// tests/models/wan_vae_test.cpp: the Wan2.1 VAE (models/vae/wan_vae.h): checkpoint key names
// and shapes of the real config, streaming decode == whole decode (bitwise), causality of the
// chunked encoder, batch handling, and the clear errors on bad checkpoints and bad inputs.
// Numerical parity with the reference is the wan_vae fixtures' job (tests/checks/).
#include "models/vae/wan_vae.h"

#include "core/tensor_io.h"

#include "core/state_dict.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using models::WanVAE;
using models::WanVAEConfig;
using models::WanVAEWrapper;
using testing::expect_error_contains;

// Tiny tensors make thousands of small ops; on a shared, oversubscribed machine each OpenMP
// parallel region can stall, so these tests run single-threaded (restored afterwards).
class OneThread {
 public:
  OneThread() : n_(at::get_num_threads()) { at::set_num_threads(1); }
  ~OneThread() { at::set_num_threads(n_); }

 private:
  int n_;
};

WanVAEConfig tiny_config() {
  WanVAEConfig c;
  c.dim = 4;
  c.z_dim = 4;
  return c;
}

WanVAEWrapper tiny_wrapper(uint64_t seed = 0) {
  torch::manual_seed(seed);
  auto cfg = tiny_config();
  WanVAEWrapper w(cfg, torch::randn({cfg.z_dim}) * 0.3, torch::rand({cfg.z_dim}) + 0.5);
  // Non-trivial norm gains so that RMS_norm's gamma matters.
  torch::NoGradGuard g;
  for (auto& p : w.model()->named_parameters())
    if (p.key().find("gamma") != std::string::npos) p.value().uniform_(0.85, 1.15);
  return w;
}

TEST(WanVAE, RealConfigKeysAndShapes) {
  WanVAE vae;  // Wan2.1_VAE.pth: dim 96, z_dim 16, [1,2,4,4], 2 res blocks, [F,T,T]
  auto sd = core::state_dict(*vae);
  auto expect_shape = [&](const std::string& k, std::vector<int64_t> shape) {
    ASSERT_TRUE(sd.count(k)) << "missing key " << k;
    EXPECT_EQ(sd.at(k).sizes().vec(), shape) << k;
  };
  expect_shape("encoder.conv1.weight", {96, 3, 3, 3, 3});
  expect_shape("encoder.downsamples.0.residual.0.gamma", {96, 1, 1, 1});
  expect_shape("encoder.downsamples.0.residual.2.weight", {96, 96, 3, 3, 3});
  expect_shape("encoder.downsamples.2.resample.1.weight", {96, 96, 3, 3});
  expect_shape("encoder.downsamples.3.shortcut.weight", {192, 96, 1, 1, 1});
  expect_shape("encoder.downsamples.5.time_conv.weight", {192, 192, 3, 1, 1});
  expect_shape("encoder.downsamples.8.time_conv.weight", {384, 384, 3, 1, 1});
  expect_shape("encoder.downsamples.10.residual.6.bias", {384});
  expect_shape("encoder.middle.1.norm.gamma", {384, 1, 1});
  expect_shape("encoder.middle.1.to_qkv.weight", {1152, 384, 1, 1});
  expect_shape("encoder.middle.1.proj.weight", {384, 384, 1, 1});
  expect_shape("encoder.head.0.gamma", {384, 1, 1, 1});
  expect_shape("encoder.head.2.weight", {32, 384, 3, 3, 3});
  expect_shape("conv1.weight", {32, 32, 1, 1, 1});
  expect_shape("conv2.weight", {16, 16, 1, 1, 1});
  expect_shape("decoder.conv1.weight", {384, 16, 3, 3, 3});
  expect_shape("decoder.upsamples.3.time_conv.weight", {768, 384, 3, 1, 1});
  expect_shape("decoder.upsamples.3.resample.1.weight", {192, 384, 3, 3});
  expect_shape("decoder.upsamples.4.shortcut.weight", {384, 192, 1, 1, 1});
  expect_shape("decoder.upsamples.7.time_conv.weight", {768, 384, 3, 1, 1});
  expect_shape("decoder.upsamples.11.resample.1.weight", {96, 192, 3, 3});
  expect_shape("decoder.upsamples.14.residual.6.weight", {96, 96, 3, 3, 3});
  expect_shape("decoder.head.2.weight", {3, 96, 3, 3, 3});
  EXPECT_EQ(sd.count("encoder.downsamples.2.time_conv.weight"), 0u);  // downsample2d
  EXPECT_EQ(sd.count("decoder.upsamples.11.time_conv.weight"), 0u);   // upsample2d
  EXPECT_EQ(sd.count("encoder.downsamples.0.shortcut.weight"), 0u);   // Cin == Cout
  EXPECT_EQ(vae->config().temporal_stride(), 4);
  EXPECT_EQ(vae->config().spatial_stride(), 8);
  int64_t n = 0;
  for (const auto& kv : sd) n += kv.second.numel();
  EXPECT_EQ(sd.size(), 194u);
  EXPECT_GT(n, 120'000'000);  // ~127M parameters (~508 MB float32)
  EXPECT_LT(n, 130'000'000);
}

TEST(WanVAE, ShapesEncodeDecode) {
  OneThread one_thread;
  auto w = tiny_wrapper();
  auto video = torch::rand({1, 3, 9, 16, 24}) * 2 - 1;
  auto lat = w.encode_to_latent(video);
  EXPECT_EQ(lat.sizes().vec(), (std::vector<int64_t>{1, 3, 4, 2, 3}));  // [B,F',z,h,w]
  auto px = w.decode_to_pixel(lat);
  EXPECT_EQ(px.sizes().vec(), (std::vector<int64_t>{1, 9, 3, 16, 24}));  // [B,F,3,H,W]
  EXPECT_LE(px.abs().max().item<float>(), 1.0f);
  EXPECT_EQ(px.scalar_type(), torch::kFloat);
  {
    c10::InferenceMode inference;  // as inference/ calls it
    auto s = w.stream_decoder();
    auto a = s.push(lat.slice(1, 0, 2));
    auto b = s.push(lat.slice(1, 2, 3));
    EXPECT_TRUE(torch::equal(torch::cat({a, b}, 1), px));
  }
}

TEST(WanVAE, LoadFileSafetensorsAndPth) {
  testing::TempDir dir;
  auto a = tiny_wrapper(5), b = tiny_wrapper(6);
  core::save_safetensors(dir.file("vae.safetensors"), core::state_dict(*a.model()));
  b.load_file(dir.file("vae.safetensors"));
  for (const auto& kv : core::state_dict(*a.model()))
    EXPECT_TRUE(torch::equal(kv.second, core::state_dict(*b.model()).at(kv.first))) << kv.first;
  // The same state dict as a torch.save archive (Wan2.1_VAE.pth's format).
  auto c = tiny_wrapper(7);
  core::save_torch_checkpoint(dir.file("Wan2.1_VAE.pth"), core::state_dict(*a.model()));
  c.load_file(dir.file("Wan2.1_VAE.pth"));
  for (const auto& kv : core::state_dict(*a.model()))
    EXPECT_TRUE(torch::equal(kv.second, core::state_dict(*c.model()).at(kv.first))) << kv.first;
  expect_error_contains([&] { b.load_file(dir.file("missing.pth")); }, {"missing.pth"});
}

TEST(WanVAE, StreamDecodeEqualsWholeDecodeBitwise) {
  OneThread one_thread;
  auto w = tiny_wrapper(1);
  auto lat = torch::randn({2, 5, 4, 2, 3});  // [B,F,z,h,w]
  auto whole = w.decode_to_pixel(lat);
  ASSERT_EQ(whole.size(1), 1 + 4 * 4);
  // The module's decode (layout [B,C,T,H,W], raw) clamped gives the same values too.
  auto raw = w.model()->decode(lat.permute({0, 2, 1, 3, 4}), w.mean(), 1.0 / w.std());
  EXPECT_TRUE(torch::equal(raw.clamp(-1, 1).permute({0, 2, 1, 3, 4}), whole));
  bool first = true;
  for (std::vector<int64_t> blocks : {std::vector<int64_t>{3, 2}, {1, 1, 3}}) {
    auto s = w.stream_decoder();
    std::vector<torch::Tensor> outs;
    int64_t f = 0;
    for (int64_t n : blocks) {
      auto o = s.push(lat.slice(1, f, f + n));
      EXPECT_EQ(o.size(1), f == 0 ? 1 + 4 * (n - 1) : 4 * n);
      outs.push_back(o);
      f += n;
    }
    EXPECT_EQ(s.latent_frames_seen(), 5);
    EXPECT_GT(s.cache_bytes(), 0);
    EXPECT_TRUE(torch::equal(torch::cat(outs, 1), whole)) << "blocks " << blocks.size();
    if (first) {
      s.reset();
      EXPECT_TRUE(torch::equal(s.push(lat), whole));  // reset starts a new video
      first = false;
    }
  }
}

TEST(WanVAE, EncoderIsCausalAndBatchItemsIndependent) {
  OneThread one_thread;
  auto w = tiny_wrapper(2);
  auto video = torch::rand({2, 3, 9, 16, 16}) * 2 - 1;
  auto lat9 = w.encode_to_latent(video);
  auto lat5 = w.encode_to_latent(video.slice(2, 0, 5));
  // Latent frames 0 and 1 depend only on input frames 0..4.
  EXPECT_LT((lat9.slice(1, 0, 2) - lat5).abs().max().item<float>(), 1e-6);
  auto lat_b1 = w.encode_to_latent(video.slice(0, 1, 2));
  EXPECT_LT((lat9.slice(0, 1, 2) - lat_b1).abs().max().item<float>(), 1e-6);
  // Changing a later frame leaves earlier latents untouched.
  auto v2 = video.clone();
  v2.slice(2, 5, 9).zero_();
  auto lat9b = w.encode_to_latent(v2);
  EXPECT_TRUE(torch::equal(lat9b.slice(1, 0, 2), lat9.slice(1, 0, 2)));
  EXPECT_FALSE(torch::equal(lat9b.slice(1, 2, 3), lat9.slice(1, 2, 3)));
}

TEST(WanVAE, Bf16RunsCloseToFp32) {
  OneThread one_thread;
  auto w = tiny_wrapper(3);
  auto lat = torch::randn({1, 2, 4, 2, 2});
  auto ref = w.decode_to_pixel(lat);
  w.to(torch::kCPU, torch::kBFloat16);
  auto got = w.decode_to_pixel(lat);
  EXPECT_EQ(got.scalar_type(), torch::kFloat);
  EXPECT_LT((got - ref).abs().max().item<float>(), 0.1f);
}

TEST(WanVAE, WrongShapedCheckpointNamesKeyAndShapes) {
  auto w = tiny_wrapper();
  auto sd = core::state_dict(*w.model());
  sd["decoder.conv1.weight"] = torch::zeros({8, 4, 3, 3, 3});
  expect_error_contains([&] { w.load(sd, "vae.safetensors"); },
                        {"vae.safetensors", "decoder.conv1.weight", "[8, 4, 3, 3, 3]",
                         "[16, 4, 3, 3, 3]"});
  // A checkpoint of another size (the real one into a tiny config) fails the same way.
  auto sd3 = core::state_dict(*w.model());
  sd3.erase("encoder.head.2.bias");
  sd3["encoder.head.2.extra"] = torch::zeros({1});
  expect_error_contains([&] { w.load(sd3, "x.safetensors"); },
                        {"encoder.head.2.bias", "encoder.head.2.extra"});
  // The good state dict loads.
  w.load(core::state_dict(*w.model()), "ok");
}

TEST(WanVAE, BadInputsGiveClearErrors) {
  auto w = tiny_wrapper();
  expect_error_contains([&] { w.encode_to_latent(torch::zeros({1, 3, 4, 16, 16})); },
                        {"encode_to_latent", "4 frames", "1+4k"});
  expect_error_contains([&] { w.encode_to_latent(torch::zeros({1, 3, 6, 16, 16})); },
                        {"6 frames", "1+4k"});
  expect_error_contains([&] { w.encode_to_latent(torch::zeros({1, 4, 5, 16, 16})); },
                        {"4 channels", "want 3"});
  expect_error_contains([&] { w.encode_to_latent(torch::zeros({3, 5, 16, 16})); },
                        {"[3, 5, 16, 16]", "5 dims"});
  expect_error_contains([&] { w.encode_to_latent(torch::zeros({1, 3, 5, 12, 16})); },
                        {"12 x 16", "multiples of 8"});
  expect_error_contains([&] { w.model()->decode(torch::zeros({1, 5, 2, 2, 2}), w.mean(), w.std()); },
                        {"WanVAE.decode", "5 latent channels", "z_dim = 4"});
  // decode_to_pixel takes [B,F,z,h,w]: the module layout [B,z,F,h,w] is caught.
  expect_error_contains([&] { w.decode_to_pixel(torch::zeros({1, 4, 3, 2, 2})); },
                        {"decode_to_pixel", "3 latent channels", "[B,F,z,h,w]"});
  expect_error_contains([&] { w.decode_to_pixel(torch::zeros({4, 3, 2, 2})); }, {"5 dims"});
  auto s = w.stream_decoder();
  s.push(torch::zeros({1, 1, 4, 2, 2}));
  expect_error_contains([&] { s.push(torch::zeros({1, 1, 4, 2, 3})); },
                        {"2 x 2", "reset()"});
  expect_error_contains([&] { WanVAEWrapper bad(tiny_config()); }, {"z_dim = 4", "16"});
  WanVAEConfig c = tiny_config();
  c.temperal_downsample = {true, true};
  expect_error_contains([&] { WanVAE v(c); }, {"temperal_downsample", "want len(dim_mult) - 1"});
  expect_error_contains([&] { WanVAEConfig::from_json(nlohmann::json{{"dim", 0}}); },
                        {"dim", "want > 0"});
}

}  // namespace
}  // namespace causvid
