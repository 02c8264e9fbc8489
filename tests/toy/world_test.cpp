// tests/toy/world_test.cpp: the toy world (toy/world.h): prompts, rendering, motion with
// wrap-around, dataset balance and determinism, previews, and the toy text encoder.
#include "toy/world.h"

#include <set>

#include "core/fs.h"
#include "data/image_io.h"
#include "data/prompt_cache.h"
#include "tests/test_util.h"
#include "toy/text_encoder.h"

namespace causvid {
namespace {

TEST(ToyWorld, PromptsRoundTripAndRejectForeignWords) {
  auto attrs = toy::all_attributes();
  ASSERT_EQ(attrs.size(), 96u);
  std::set<std::string> seen;
  for (const auto& a : attrs) {
    auto p = toy::make_prompt(a);
    EXPECT_TRUE(seen.insert(p).second);
    EXPECT_EQ(toy::parse_prompt(p), a);
  }
  EXPECT_EQ(toy::parse_prompt("A  Large RED cross, moving up."),
            (toy::Attributes{1, 0, 2, 2}));
  testing::expect_error_contains([] { toy::parse_prompt("a large purple cross moving up"); },
                                 {"unknown colour 'purple'"});
  testing::expect_error_contains([] { toy::parse_prompt("a dog running"); },
                                 {"a dog running", "want 'a <size> <colour> <shape> moving"});
}

TEST(ToyWorld, RenderMovesAtConstantVelocityAndWraps) {
  toy::WorldSpec spec;  // 6 x 12 x 12, speed 1
  toy::Attributes a{1, 2, 1, 0};  // large blue diamond moving left
  auto v = toy::render(a, 1, 3, spec, 24);
  ASSERT_EQ(v.sizes(), torch::IntArrayRef({24, 4, 12, 12}));
  auto bg = toy::background_vector().view({4, 1, 1});
  const double area = toy::stamp(1, 1).sum().item<double>();
  for (int64_t t = 0; t < 24; ++t) {
    auto fg = (v[t] - bg).abs().sum(0).gt(1e-6);
    EXPECT_EQ(fg.sum().item<int64_t>(), static_cast<int64_t>(area)) << "frame " << t;
    if (t > 0)  // moving left by 1 px per frame on the torus
      EXPECT_TRUE(torch::equal(v[t], v[t - 1].roll(-1, 2))) << "frame " << t;
  }
  // Shape pixels hold the colour, the rest the background.
  auto px = v[0].permute({1, 2, 0}).reshape({-1, 4});
  auto is_fg = (px - toy::colour_vector(2)).abs().sum(1).lt(1e-6);
  auto is_bg = (px - toy::background_vector()).abs().sum(1).lt(1e-6);
  EXPECT_TRUE((is_fg | is_bg).all().item<bool>());
  EXPECT_NEAR((toy::colour_vector(3) - toy::background_vector()).norm().item<double>(),
              toy::colour_distance(), 1e-5);
}

// Whether frame `f` [H, W] (foreground mask) holds the shape on two opposite borders at once:
// the shape is split across an edge of the torus.
bool split_across_an_edge(const torch::Tensor& f) {
  return (f.select(0, 0).any().item<bool>() && f.select(0, f.size(0) - 1).any().item<bool>()) ||
         (f.select(1, 0).any().item<bool>() && f.select(1, f.size(1) - 1).any().item<bool>());
}

// With wrap_free, training clips keep the whole trajectory inside the frame (no wrap-around).
TEST(ToyWorld, WrapFreeClipsDoNotWrap) {
  toy::WorldSpec spec;
  spec.wrap_free = true;
  auto d = toy::generate(192, 3, spec);
  const auto bg = toy::background_vector().view({4, 1, 1});
  for (int64_t i = 0; i < 192; ++i) {
    auto fg = (d.latents[i] - bg).abs().sum(1).gt(1e-6);  // [F, H, W]
    for (int64_t t = 0; t < spec.frames; ++t) EXPECT_FALSE(split_across_an_edge(fg[t])) << i;
  }
}

// The default world is the torus: start positions anywhere (on the align grid), so most
// clips wrap around an edge, as every window of a longer rollout may.
TEST(ToyWorld, DefaultClipsWrapOnTheTorus) {
  toy::WorldSpec spec;
  ASSERT_FALSE(spec.wrap_free);
  auto d = toy::generate(192, 3, spec);
  const auto bg = toy::background_vector().view({4, 1, 1});
  int64_t wrapped = 0;
  for (int64_t i = 0; i < 192; ++i) {
    auto fg = (d.latents[i] - bg).abs().sum(1).gt(1e-6);  // [F, H, W]
    bool w = false;
    for (int64_t t = 0; t < spec.frames; ++t) w = w || split_across_an_edge(fg[t]);
    wrapped += w;
  }
  EXPECT_GT(wrapped, 192 / 2);
  EXPECT_LT(wrapped, 192);
}

TEST(ToyWorld, StampsAreDistinct) {
  std::set<std::string> seen;
  for (int size = 0; size < 2; ++size)
    for (int shape = 0; shape < 3; ++shape) {
      auto s = toy::stamp(shape, size);
      EXPECT_EQ(s.size(0), size == 0 ? 5 : 7);
      auto flat = s.flatten();
      std::string key(reinterpret_cast<const char*>(flat.data_ptr<float>()), flat.numel() * 4);
      EXPECT_TRUE(seen.insert(key).second);
    }
}

TEST(ToyWorld, GenerateIsBalancedAndDeterministic) {
  toy::WorldSpec spec;
  auto a = toy::generate(192, 3, spec);
  auto b = toy::generate(192, 3, spec);
  auto c = toy::generate(192, 4, spec);
  ASSERT_EQ(a.latents.sizes(), torch::IntArrayRef({192, 6, 4, 12, 12}));
  EXPECT_TRUE(torch::equal(a.latents, b.latents));
  EXPECT_EQ(a.prompts, b.prompts);
  EXPECT_FALSE(torch::equal(a.latents, c.latents));
  std::map<std::string, int> count;
  for (const auto& p : a.prompts) count[p]++;
  EXPECT_EQ(count.size(), 96u);
  for (const auto& kv : count) EXPECT_EQ(kv.second, 2) << kv.first;
}

TEST(ToyWorld, PreviewMapAndFiles) {
  toy::WorldSpec spec;
  auto v = toy::render({0, 0, 0, 1}, 4, 4, spec);  // small red square
  auto rgb = toy::latents_to_rgb(v, 4);
  ASSERT_EQ(rgb.sizes(), torch::IntArrayRef({6, 48, 48, 3}));
  EXPECT_EQ(rgb.scalar_type(), torch::kUInt8);
  auto centre = rgb[0][4 * 4 + 1][4 * 4 + 1];  // inside the square
  EXPECT_GT(centre[0].item<int>(), 200);       // red
  EXPECT_LT(centre[1].item<int>(), 100);
  auto corner = rgb[0][47][47];  // background: dark grey
  EXPECT_LT(corner[0].item<int>(), 60);
  EXPECT_EQ(corner[0].item<int>(), corner[2].item<int>());
  testing::TempDir dir;
  toy::write_preview_png(dir.file("p.png"), v.unsqueeze(0).repeat({3, 1, 1, 1, 1}), 4);
  auto img = data::read_image(dir.file("p.png"));
  EXPECT_EQ(img.size(0), 3);
  EXPECT_GT(img.size(2), img.size(1));  // 6 columns, 3 rows
  toy::write_preview_mp4(dir.file("p.mp4"), v, 4);
  EXPECT_TRUE(core::file_exists(dir.file("p.mp4")));
  testing::expect_error_contains([&] { toy::latents_to_rgb(torch::zeros({2, 3, 4, 4})); },
                                 {"want [F, 4, H, W]"});
}

TEST(ToyTextEncoder, ShapesZerosAndDeterminism) {
  toy::ToyTextEncoder enc;
  std::vector<std::string> p = {"a large red square moving left", "a small red square moving left",
                                "", "a zebra"};
  auto e = enc.encode(p);
  ASSERT_EQ(e.sizes(), torch::IntArrayRef({4, 16, 64}));
  EXPECT_EQ(enc.dim(), 64);
  EXPECT_EQ(enc.text_len(), 16);
  auto tok = enc.tokenizer()(p);
  EXPECT_EQ(tok.lengths, (std::vector<int64_t>{7, 7, 1, 3}));
  EXPECT_EQ(tok.ids[3][1].item<int64_t>(), 2);  // "zebra" -> <unk>
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(e[i].narrow(0, tok.lengths[i], 16 - tok.lengths[i]).eq(0).all().item<bool>());
    EXPECT_GT(e[i][0].abs().sum().item<double>(), 1.0);
  }
  EXPECT_GT((e[0] - e[1]).abs().max().item<double>(), 0.1);  // "large" vs "small"
  toy::ToyTextEncoder enc2;
  EXPECT_TRUE(torch::equal(e, enc2.encode(p)));  // fixed-seed weights
  EXPECT_TRUE(torch::isfinite(e).all().item<bool>());
  // Long prompts are truncated to text_len with the EOS kept.
  auto t = enc.tokenizer()({std::string(200, 'a') + " a a a a a a a a a a a a a a a a a a a"});
  EXPECT_EQ(t.lengths[0], 16);
  EXPECT_EQ(t.ids[0][15].item<int64_t>(), 1);
}

TEST(ToyTextEncoder, SelectedByTextEncoderPathToy) {
  data::TextConditionerOptions o;
  o.encoder_path = "toy";
  o.text_len = 16;
  auto c = data::make_text_conditioner(o);
  EXPECT_EQ(c->dim(), 64);
  auto e = c->encode({"a small green cross moving down"});
  toy::ToyTextEncoder ref;
  EXPECT_TRUE(torch::equal(e, ref.encode({"a small green cross moving down"})));
}

}  // namespace
}  // namespace causvid
