// tests/models/layouts_test.cpp: foreign weight layouts (models/common/key_table.h,
// models/wan/wan_layouts.h, trainer/model_export.h) and LoRA files (models/wan/lora.h):
// round trips that must be bit-identical, and the bad inputs of issue #15 with their errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/safetensors.h"
#include "core/state_dict.h"
#include "models/t5/tokenizer.h"
#include "models/t5/umt5.h"
#include "models/vae/vae_layouts.h"
#include "models/wan/lora.h"
#include "models/wan/wan_layouts.h"
#include "models/wan/wan_loader.h"
#include "tests/test_util.h"
#include "trainer/model_export.h"

namespace causvid {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) { return testing::source_dir() + "/tests/fixtures/" + name; }

void expect_same(const core::TensorMap& a, const core::TensorMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    EXPECT_EQ(t.scalar_type(), b.at(k).scalar_type()) << k;
    EXPECT_TRUE(torch::equal(t, b.at(k))) << k;
  }
}

TEST(KeyTable, RenamesBothWaysAndNamesWhatMapsToNothing) {
  models::KeyTable t("test", {{"blocks.{i}.q.{*}", "layers.{i}.to_q.{*}"}, {"head", "out"}});
  EXPECT_EQ(t.to_foreign("blocks.12.q.weight"), "layers.12.to_q.weight");
  EXPECT_EQ(t.to_ours("layers.3.to_q.bias"), "blocks.3.q.bias");
  EXPECT_EQ(t.to_ours("out"), "head");
  testing::expect_error_contains([&] { t.to_ours("layers.x.to_q.weight", "f.safetensors"); },
                                 {"f.safetensors", "layers.x.to_q.weight", "maps to nothing"});
  testing::expect_error_contains([&] { t.to_foreign("blocks.1.k.weight"); },
                                 {"blocks.1.k.weight", "test"});
  testing::expect_error_contains(
      [&] { models::KeyTable bad("bad", {{"a.{i}", "b.{*}"}}); }, {"different placeholders"});
}

// The round trip: diffusers folder -> CausVid model.pt -> load, bit-identical; and
// back out as diffusers (sharded) and ComfyUI fp32.
TEST(Layouts, DiffusersToCausvidToDiffusersIsBitIdentical) {
  testing::TempDir dir;
  const std::string src = fixture("diffusers_wan_dit_sharded/model");
  const auto ours = models::load_wan_state_dict(src);
  EXPECT_TRUE(ours.count("blocks.1.norm3.weight") && ours.count("head.modulation"));
  trainer::ExportOptions o;
  o.format = "causvid";
  trainer::export_model(src, dir.file("model.pt"), o);
  expect_same(ours, models::load_wan_state_dict(dir.file("model.pt")));
  o.format = "diffusers";
  o.num_heads = 2;
  o.max_shard_bytes = 20000;
  trainer::export_model(dir.file("model.pt"), dir.file("transformer"), o);
  EXPECT_TRUE(fs::exists(dir.file("transformer/diffusion_pytorch_model.safetensors.index.json")));
  expect_same(ours, models::load_wan_state_dict(dir.file("transformer")));
  // Re-exported into the same folder as one bf16 file: no shard or index of the first export
  // is left to be read instead.
  o.max_shard_bytes = uint64_t(1) << 30;
  o.dtype = "bf16";
  trainer::export_model(dir.file("model.pt"), dir.file("transformer"), o);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.file("transformer"))) files += e.is_regular_file();
  EXPECT_EQ(files, 2u) << "config.json + diffusion_pytorch_model.safetensors";
  auto bf = models::load_wan_state_dict(dir.file("transformer"));
  EXPECT_EQ(bf.at("blocks.0.ffn.0.weight").scalar_type(), torch::kBFloat16);
  o.dtype = "";
  o.max_shard_bytes = 20000;
  trainer::export_model(dir.file("model.pt"), dir.file("transformer"), o);
  // The exported config.json sizes the same model as the original.
  std::ifstream a(src + "/transformer/config.json"), b(dir.file("transformer/config.json"));
  auto ca = models::wan_config_from_diffusers(nlohmann::json::parse(a), "a");
  auto cb = models::wan_config_from_diffusers(nlohmann::json::parse(b), "b");
  EXPECT_EQ(ca.to_json(), cb.to_json());
  o.format = "comfyui";
  o.dtype = "fp32";
  trainer::export_model(src, dir.file("comfy.safetensors"), o);
  EXPECT_TRUE(core::SafetensorsFile(dir.file("comfy.safetensors")).contains(
      "model.diffusion_model.blocks.0.self_attn.q.weight"));
  expect_same(ours, models::load_wan_state_dict(dir.file("comfy.safetensors")));
}

// A whole WanPipeline folder: each part reads back bit-identically (that diffusers' and
// transformers' own from_pretrained read it and compute the fixtures' outputs exactly is
// checked by tools/fixtures/check_export_diffusers.py).
TEST(Layouts, PipelineExportReadsBackBitIdentical) {
  testing::TempDir dir;
  trainer::ExportOptions o;
  o.format = "diffusers";
  o.num_heads = 2;
  o.vae = fixture("diffusers_wan_vae_d4_z4_t9_16x8/model");
  o.text_encoder = fixture("hf_umt5_enc_v160_d48_h4_l2_L80/model");
  o.tokenizer = fixture("hf_umt5_tok_spm300_L64/model");
  trainer::export_model(fixture("diffusers_wan_dit_sharded/model"), dir.file("pipe"), o);
  for (const char* f : {"model_index.json", "scheduler/scheduler_config.json",
                        "transformer/config.json", "vae/config.json", "text_encoder/config.json",
                        "tokenizer/spiece.model"})
    EXPECT_TRUE(fs::exists(dir.file(std::string("pipe/") + f))) << f;
  expect_same(models::load_wan_state_dict(fixture("diffusers_wan_dit_sharded/model")),
              models::load_wan_state_dict(dir.file("pipe")));
  auto v0 = models::load_wan_vae_any(o.vae), v1 = models::load_wan_vae_any(dir.file("pipe"));
  expect_same(core::state_dict(*v0->model()), core::state_dict(*v1->model()));
  EXPECT_TRUE(torch::equal(v0->mean(), v1->mean()) && torch::equal(v0->std(), v1->std()));
  expect_same(models::read_umt5_weights(o.text_encoder), models::read_umt5_weights(dir.file("pipe")));
  models::UMT5Tokenizer t0(o.tokenizer, 64), t1(dir.file("pipe"), 64);
  auto b0 = t0({"<extra_id_0> a cat"}), b1 = t1({"<extra_id_0> a cat"});
  EXPECT_TRUE(torch::equal(b0.ids, b1.ids));
}

TEST(Layouts, Fp8ScaledExportRoundTripsWithinFp8Precision) {
  testing::TempDir dir;
  const auto ours = models::load_wan_state_dict(fixture("comfyui_wan_dit_bf16/model.safetensors"));
  models::save_comfyui_dit(dir.file("fp8.safetensors"), ours, "fp8_e4m3fn_scaled");
  core::SafetensorsFile f(dir.file("fp8.safetensors"));
  EXPECT_TRUE(f.contains("model.diffusion_model.scaled_fp8"));  // where ComfyUI looks
  EXPECT_EQ(f.info("model.diffusion_model.blocks.0.ffn.0.weight").dtype, torch::kFloat8_e4m3fn);
  auto back = models::load_wan_state_dict(dir.file("fp8.safetensors"));
  for (const auto& [k, t] : ours) {
    auto want = t.to(torch::kFloat32), got = back.at(k).to(torch::kFloat32);
    EXPECT_LE((got - want).abs().max().item<double>(), 0.07 * want.abs().max().item<double>() + 1e-6) << k;
  }
}

TEST(Layouts, BadFoldersAndFilesNameTheFileAndKey) {
  testing::TempDir dir;
  // A shard named in the index is missing.
  fs::copy(fixture("diffusers_wan_dit_sharded/model/transformer"), dir.file("t"));
  fs::remove(dir.file("t/diffusion_pytorch_model-00002-of-00004.safetensors"));
  testing::expect_error_contains([&] { models::load_wan_state_dict(dir.file("t")); },
                                 {"index.json", "diffusion_pytorch_model-00002-of-00004.safetensors",
                                  "does not exist"});
  // An fp8 weight without its scale in a scaled_fp8 file.
  auto sd = core::load_safetensors(fixture("comfyui_wan_dit_fp8_e4m3fn_scaled/model.safetensors"));
  sd.erase("model.diffusion_model.blocks.1.ffn.2.scale_weight");
  core::save_safetensors(dir.file("noscale.safetensors"), sd);
  testing::expect_error_contains(
      [&] { models::load_wan_state_dict(dir.file("noscale.safetensors")); },
      {dir.file("noscale.safetensors"), "blocks.1.ffn.2.weight", "scale_weight", "scaled_fp8"});
  // A diffusers key our table does not know (an i2v image embedder).
  auto d = models::diffusers_wan_dit_table().to_foreign(
      models::load_wan_state_dict(fixture("diffusers_wan_dit_sharded/model")));
  d["condition_embedder.image_embedder.norm1.weight"] = torch::ones({4});
  core::save_safetensors(dir.file("i2v.safetensors"), d);
  testing::expect_error_contains([&] { models::load_wan_state_dict(dir.file("i2v.safetensors")); },
                                 {"condition_embedder.image_embedder.norm1.weight", "maps to nothing"});
}

// ------------------------------------------------------------------ LoRA

core::TensorMap base_weights() {
  return core::load_safetensors(fixture("lora_wan_dit_comfyui_all_r4/weights.safetensors"));
}

core::TensorMap merged(const models::LoraFile& l, double scale) {
  auto sd = base_weights();
  models::merge_lora(sd, l, scale);
  return sd;
}

TEST(Lora, BadFilesAreRefusedNamingTheKey) {
  const std::string bad = testing::source_dir() + "/tests/bad_inputs/lora/";
  const auto sd = base_weights();
  auto check = [&](const std::string& f) { models::check_lora(models::read_lora(bad + f), sd); };
  testing::expect_error_contains([&] { check("unknown_module_comfyui.safetensors"); },
                                 {"blocks.0.self_attn.qkv", "does not have"});
  testing::expect_error_contains([&] { check("unknown_module_peft.safetensors"); },
                                 {"unknown_module_peft.safetensors", "attn1.to_qkv", "maps to nothing"});
  testing::expect_error_contains([&] { check("block_out_of_range_comfyui.safetensors"); },
                                 {"blocks.2.self_attn.q", "the model has 2 blocks"});
  testing::expect_error_contains([&] { check("rank_mismatch_comfyui.safetensors"); },
                                 {"blocks.0.self_attn.q", "rank mismatch", "[4, 64]", "[64, 2]"});
  testing::expect_error_contains([&] { check("up_shape_mismatch_comfyui.safetensors"); },
                                 {"blocks.0.ffn.0", "[96, 64]"});
  testing::expect_error_contains([&] { check("down_shape_mismatch_comfyui.safetensors"); },
                                 {"blocks.0.self_attn.k", "[4, 96]", "[64, 64]"});
  testing::expect_error_contains([&] { check("missing_alpha_comfyui.safetensors"); },
                                 {"blocks.0.self_attn.v.alpha", "missing"});
  testing::expect_error_contains([&] { check("missing_up_comfyui.safetensors"); },
                                 {"blocks.0.self_attn.v", "lora_up"});
}

TEST(Lora, SavedFilesReadBackToTheSameMerge) {
  testing::TempDir dir;
  for (const char* name : {"lora_wan_dit_comfyui_mixed", "lora_wan_dit_peft_r4_alpha8"}) {
    auto l = models::read_lora(fixture(std::string(name) + "/lora.safetensors"));
    const auto want = merged(l, 0.7);
    for (const char* fmt : {"comfyui", "peft"}) {
      const std::string f = dir.file(std::string(name) + "." + fmt + ".safetensors");
      models::save_lora(f, l, fmt);
      auto back = models::read_lora(f);
      EXPECT_EQ(back.format, fmt);
      const auto got = merged(back, 0.7);
      for (const auto& [k, t] : want)
        EXPECT_TRUE(torch::allclose(got.at(k), t, 1e-5, 1e-6)) << name << " " << fmt << " " << k;
    }
  }
}

// Extraction at full rank reproduces the tuned model; lower ranks report the energy kept.
TEST(Lora, ExtractionAtFullRankReproducesTheTunedModel) {
  const auto base = base_weights();
  auto tuned = merged(models::read_lora(fixture("lora_wan_dit_comfyui_causvid_like/lora.safetensors")), 1.0);
  tuned.at("blocks.0.modulation") = tuned.at("blocks.0.modulation") + 0.01;  // a non-linear change
  models::ExtractOptions o;
  o.rank = 96;
  models::ExtractReport rep;
  auto l = models::extract_lora(base, tuned, o, &rep);
  EXPECT_NEAR(rep.min_energy, 1.0, 1e-9);
  EXPECT_GT(rep.diff_tensors, 0);
  auto got = base;
  models::merge_lora(got, l, 1.0);
  for (const auto& [k, t] : tuned)
    EXPECT_TRUE(torch::allclose(got.at(k), t, 1e-5, 1e-5)) << k;
  o.rank = 1;
  o.diffs = false;
  auto l1 = models::extract_lora(base, tuned, o, &rep);
  EXPECT_LT(rep.min_energy, 1.0);
  EXPECT_GT(rep.dropped_tensors, 0);
  for (const auto& m : l1.modules) EXPECT_LE(m.rank(), 1);
}

TEST(Lora, ScaleSpecParsing) {
  EXPECT_EQ(models::parse_lora_spec("a.safetensors:0.5"), std::make_pair(std::string("a.safetensors"), 0.5));
  EXPECT_EQ(models::parse_lora_spec("a.safetensors"), std::make_pair(std::string("a.safetensors"), 1.0));
  EXPECT_EQ(models::parse_lora_spec("c:/x.safetensors").first, "c:/x.safetensors");
}

TEST(LoraCli, MergeWritesTheMergedWeightsAndBadInputsExit1) {
  testing::TempDir dir;
  const std::string bin = testing::causvid_binary(), f = fixture("lora_wan_dit_comfyui_all_r4");
  std::string out;
  EXPECT_EQ(testing::run_command(bin + " lora merge --base " + f + "/weights.safetensors --lora " +
                                     f + "/lora.safetensors:0.8 --out " + dir.file("m.safetensors"),
                                 &out),
            0)
      << out;
  auto want = merged(models::read_lora(f + "/lora.safetensors"), 0.8);
  expect_same(want, core::load_safetensors(dir.file("m.safetensors")));
  EXPECT_EQ(testing::run_command(bin + " lora inspect " + testing::source_dir() +
                                     "/tests/bad_inputs/lora/rank_mismatch_comfyui.safetensors",
                                 &out),
            1);
  EXPECT_NE(out.find("rank mismatch"), std::string::npos) << out;
  EXPECT_EQ(testing::run_command(bin + " lora merge --base " + f + "/weights.safetensors --lora " +
                                     testing::source_dir() +
                                     "/tests/bad_inputs/lora/up_shape_mismatch_comfyui.safetensors --out " +
                                     dir.file("bad.safetensors"),
                                 &out),
            1);
  EXPECT_FALSE(fs::exists(dir.file("bad.safetensors")));
}

}  // namespace
}  // namespace causvid
