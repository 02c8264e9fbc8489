// tests/core/config_test.cpp: core/config: CausVid's configs load unmodified, tiny configs,
// unknown keys / wrong types / missing keys / malformed YAML errors, --set overrides,
// validate() failures, save/load round trip, and the `causvid config` subcommand.
#include "core/config.h"

#include <filesystem>

#include "core/fs.h"
#include "models/wan/presets.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using core::Config;
using testing::expect_error_contains;
using testing::TempDir;

std::string config_path(const std::string& name) {
  return testing::source_dir() + "/configs/" + name;
}

const std::vector<std::string> kCausVidConfigs = {
    "wan_bidirectional_dmd.yaml", "wan_bidirectional_dmd_from_scratch.yaml",
    "wan_causal_ode.yaml", "wan_causal_dmd.yaml", "wan_causal_dmd_warp_4step_cfg2.yaml"};
const std::vector<std::string> kTinyConfigs = {"tiny_ode.yaml", "tiny_dmd.yaml",
                                               "tiny_bidirectional_dmd.yaml"};

// CausVid's negative prompt: 403 UTF-8 bytes starting with U+8272 U+8C03 U+8273 U+4E3D and
// ending with U+8D70.
void expect_causvid_negative_prompt(const std::string& s) {
  EXPECT_EQ(s.size(), 403u);
  EXPECT_EQ(s.substr(0, 12), "\xe8\x89\xb2\xe8\xb0\x83\xe8\x89\xb3\xe4\xb8\xbd");
  EXPECT_EQ(s.substr(s.size() - 3), "\xe8\xb5\xb0");
  EXPECT_NE(s.find("JPEG"), std::string::npos);
}

// A small valid ODE config body, for error tests.
const char* kMinimalOde =
    "model_name: causal_wan\n"
    "distillation_loss: ode\n"
    "generator_task: causal_video\n"
    "denoising_step_list: [1000, 757, 522, 0]\n"
    "data_path: x_lmdb\n"
    "batch_size: 1\n"
    "lr: 2.0e-06\n"
    "log_iters: 10\n";

TEST(Config, CausVidCausalDmdLoadsWithItsValues) {
  Config c = core::load_config(config_path("wan_causal_dmd.yaml"));
  EXPECT_EQ(c.model_name, "wan");
  EXPECT_EQ(c.generator_name, "causal_wan");
  EXPECT_EQ(c.generator_model(), "causal_wan");
  EXPECT_EQ(c.real_model(), "wan");
  EXPECT_EQ(c.generator_ckpt, "wan_causal_ode_checkpoint_model_003000/model.pt");
  EXPECT_EQ(c.generator_fsdp_wrap_strategy, "size");
  EXPECT_EQ(c.generator_grad, (std::map<std::string, bool>{{"model", true}}));
  EXPECT_EQ(c.real_score_grad, (std::map<std::string, bool>{{"model", false}}));
  EXPECT_EQ(c.fake_score_grad, (std::map<std::string, bool>{{"model", true}}));
  EXPECT_EQ(c.denoising_step_list, (std::vector<int>{1000, 757, 522, 0}));
  EXPECT_EQ(c.num_train_timestep, 1000);
  EXPECT_DOUBLE_EQ(c.timestep_shift, 8.0);
  EXPECT_DOUBLE_EQ(c.real_guidance_scale, 3.5);
  EXPECT_EQ(c.generator_task, "causal_video");
  EXPECT_TRUE(c.is_causal());
  EXPECT_EQ(c.real_task_type, "bidirectional_video");
  EXPECT_EQ(c.fake_task(), "bidirectional_video");
  EXPECT_EQ(c.denoising_loss_type, "flow");
  EXPECT_TRUE(c.mixed_precision);
  EXPECT_EQ(c.seed, 0);
  EXPECT_EQ(c.sharding_strategy, "hybrid_full");
  EXPECT_DOUBLE_EQ(c.lr, 2.0e-6);
  EXPECT_DOUBLE_EQ(c.beta1, 0.9);
  EXPECT_DOUBLE_EQ(c.beta2, 0.999);
  EXPECT_DOUBLE_EQ(c.critic_lr(), 2.0e-6);
  EXPECT_EQ(c.data_path, "mixkit_latents_lmdb");
  EXPECT_EQ(c.batch_size, 1);
  EXPECT_EQ(c.log_iters, 200);
  EXPECT_EQ(c.save_every(), 200);
  expect_causvid_negative_prompt(c.negative_prompt);
  EXPECT_EQ(c.dfake_gen_update_ratio, 5);
  EXPECT_EQ(c.image_or_video_shape, (std::vector<int>{1, 21, 16, 60, 104}));
  EXPECT_EQ(c.output_path, "/mnt/localssd/wan_causal_dmd");
  EXPECT_EQ(c.distillation_loss, "dmd");
  EXPECT_TRUE(c.gradient_checkpointing);
  EXPECT_FALSE(c.backward_simulation);
  EXPECT_EQ(c.num_frame_per_block, 3);
  EXPECT_FALSE(c.warp_denoising_step);
  EXPECT_EQ(c.source, config_path("wan_causal_dmd.yaml"));
}

TEST(Config, CausVidWarpConfigLoads) {
  Config c = core::load_config(config_path("wan_causal_dmd_warp_4step_cfg2.yaml"));
  EXPECT_EQ(c.denoising_step_list, (std::vector<int>{1000, 750, 500, 250, 0}));
  EXPECT_DOUBLE_EQ(c.real_guidance_scale, 2.0);
  EXPECT_TRUE(c.warp_denoising_step);
  EXPECT_EQ(c.output_path, "/mnt/localssd/wan_causal_dmd_warp_4step");
  expect_causvid_negative_prompt(c.negative_prompt);
}

TEST(Config, CausVidOdeConfigLoads) {
  Config c = core::load_config(config_path("wan_causal_ode.yaml"));
  EXPECT_EQ(c.model_name, "causal_wan");
  EXPECT_EQ(c.generator_model(), "causal_wan");
  EXPECT_EQ(c.distillation_loss, "ode");
  EXPECT_FALSE(c.is_dmd());
  EXPECT_EQ(c.denoising_step_list, (std::vector<int>{1000, 757, 522, 0}));
  EXPECT_EQ(c.data_path, "mixkit_ode_lmdb");
  EXPECT_EQ(c.batch_size, 2);
  EXPECT_EQ(c.num_frame_per_block, 3);
  EXPECT_EQ(c.output_path, "/mnt/localssd/wan_causal_ode");
  EXPECT_TRUE(c.negative_prompt.empty());
}

TEST(Config, CausVidBidirectionalConfigsLoad) {
  Config a = core::load_config(config_path("wan_bidirectional_dmd.yaml"));
  EXPECT_EQ(a.generator_task, "bidirectional_video");
  EXPECT_FALSE(a.is_causal());
  EXPECT_EQ(a.denoising_step_list, (std::vector<int>{1000, 757, 522}));
  EXPECT_TRUE(a.backward_simulation);  // not in the file: CausVid's getattr default
  EXPECT_EQ(a.data_path, "sample_dataset/mixkit_prompts.txt");
  EXPECT_EQ(a.num_frame_per_block, 1);
  expect_causvid_negative_prompt(a.negative_prompt);

  Config b = core::load_config(config_path("wan_bidirectional_dmd_from_scratch.yaml"));
  EXPECT_FALSE(b.backward_simulation);
  EXPECT_FALSE(b.warp_denoising_step);  // not in the file
  EXPECT_EQ(b.data_path, "mixkit_latents_lmdb");
  EXPECT_EQ(b.output_path, "/mnt/localssd/wan_bidirectional_dmd_from_scratch");
}

TEST(Config, TinyConfigsLoadAndValidate) {
  for (const auto& name : kTinyConfigs) {
    SCOPED_TRACE(name);
    Config c = core::load_config(config_path(name));
    models::WanConfig d = models::wan_config(c);
    EXPECT_EQ(d.num_layers, 2);
    EXPECT_EQ(d.dim, 64);
    EXPECT_EQ(c.image_or_video_shape, (std::vector<int>{1, 3, 4, 8, 8}));
    EXPECT_EQ(c.device, "cpu");
    EXPECT_NE(c.seed, 0);
    EXPECT_EQ(c.max_iters, 10);
  }
  EXPECT_TRUE(core::load_config(config_path("tiny_dmd.yaml")).is_causal());
  EXPECT_FALSE(core::load_config(config_path("tiny_bidirectional_dmd.yaml")).is_causal());
}

TEST(Config, DefaultsValidateAndDerivedValues) {
  Config c;
  c.validate();
  EXPECT_EQ(c.generator_model(), "wan");
  EXPECT_EQ(c.real_task(), c.generator_task);
  EXPECT_EQ(c.text_encoder_file(), "wan_models/Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth");
  EXPECT_EQ(c.vae_file(), "wan_models/Wan2.1-T2V-1.3B/Wan2.1_VAE.pth");
  EXPECT_EQ(c.dit_file(), "wan_models/Wan2.1-T2V-1.3B");
  EXPECT_EQ(c.checkpoint_root(), "outputs");
  EXPECT_DOUBLE_EQ(c.weight_decay, 0.01);
  EXPECT_DOUBLE_EQ(c.grad_clip, 10.0);
  c.lr_critic = 4e-7;
  c.beta1_critic = 0.0;
  EXPECT_DOUBLE_EQ(c.critic_lr(), 4e-7);
  EXPECT_DOUBLE_EQ(c.critic_beta1(), 0.0);
  EXPECT_DOUBLE_EQ(c.critic_beta2(), c.beta2);
  EXPECT_EQ(models::wan_preset("wan-14b").dim, 5120);
  EXPECT_EQ(models::wan_preset("wan-1.3b").head_dim(), 128);
  expect_error_contains([] { models::wan_preset("wan-2b"); }, {"model_preset", "wan-2b"});
  Config unknown;
  unknown.model_preset = "wan-2b";
  expect_error_contains([&] { models::wan_config(unknown); }, {"model_preset", "wan-2b", "toy"});
  expect_error_contains([&] { unknown.validate(); }, {"model_preset", "wan-2b"});
}

// CausVid FSDP-wraps its frozen text encoder (trainer/sharded_text_encoder.h does too): the
// keys load and are validated like the models' wrap keys.
TEST(Config, TextEncoderFsdpKeysLoadAndAreChecked) {
  Config c = core::parse_config(std::string(kMinimalOde) +
                                    "text_encoder_fsdp_wrap_strategy: transformer\n"
                                    "text_encoder_fsdp_transformer_module: blocks\n",
                                "m.yaml");
  EXPECT_EQ(c.text_encoder_fsdp_wrap_strategy, "transformer");
  core::apply_overrides(c, {"text_encoder_fsdp_wrap_strategy=layers"});
  expect_error_contains([&] { c.validate(); }, {"text_encoder_fsdp_wrap_strategy", "layers"});
}

TEST(Config, SelfForcingKeys) {
  Config c = core::parse_config(std::string(kMinimalOde) +
                                    "lr_critic: 4.0e-07\nbeta1_critic: 0.0\nbeta2_critic: 0.999\n"
                                    "weight_decay: 0.0\nema_weight: 0.99\nema_start_step: 200\n"
                                    "guidance_scale: 3.0\n",
                                "sf.yaml");
  c.validate();
  EXPECT_DOUBLE_EQ(c.critic_lr(), 4e-7);
  EXPECT_DOUBLE_EQ(c.ema_weight, 0.99);
  EXPECT_EQ(c.ema_start_step, 200);
  EXPECT_DOUBLE_EQ(c.real_guidance_scale, 3.0);
  expect_error_contains(
      [] {
        core::parse_config(std::string(kMinimalOde) + "guidance_scale: 3.0\n"
                                                      "real_guidance_scale: 3.0\n",
                           "sf.yaml");
      },
      {"sf.yaml:10", "'real_guidance_scale' given twice"});
}

TEST(Config, UnknownKeyNamesFileAndClosestKey) {
  expect_error_contains(
      [] {
        core::parse_config(std::string(kMinimalOde) + "num_frame_per_blok: 3\n",
                           "configs/x.yaml");
      },
      {"configs/x.yaml: unknown key 'num_frame_per_blok' (did you mean 'num_frame_per_block'?)"});
  expect_error_contains(
      [] { core::parse_config(std::string(kMinimalOde) + "lr_critc: 1.0\n", "x.yaml"); },
      {"unknown key 'lr_critc'", "did you mean 'lr_critic'?"});
  // Nothing close: no suggestion.
  try {
    core::parse_config(std::string(kMinimalOde) + "zzzzzzzzzzzz: 1\n", "x.yaml");
    ADD_FAILURE() << "expected an error";
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("unknown key 'zzzzzzzzzzzz'"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("did you mean"), std::string::npos) << msg;
  }
}

TEST(Config, WandbKeysAreIgnored) {
  Config c = core::parse_config(
      std::string(kMinimalOde) + "wandb_host: WANDB_HOST\nwandb_key: null\nwandb_name: run\n",
      "x.yaml");
  EXPECT_EQ(core::config_to_yaml(c).find("wandb"), std::string::npos);
}

TEST(Config, WrongTypeNamesKeyLineAndExpectedType) {
  auto with = [](const std::string& extra) {
    return [extra] { core::parse_config(std::string(kMinimalOde) + extra, "t.yaml"); };
  };
  expect_error_contains(with("seed: abc\n"), {"t.yaml:9", "key 'seed'", "'abc'", "an integer"});
  expect_error_contains(with("num_frame_per_block: 1.5\n"),
                        {"key 'num_frame_per_block'", "'1.5'", "want an integer"});
  expect_error_contains(with("timestep_shift: [8]\n"),
                        {"key 'timestep_shift'", "[8]", "want a number"});
  expect_error_contains(with("gradient_checkpointing: maybe\n"),
                        {"key 'gradient_checkpointing'", "want a boolean"});
  expect_error_contains(with("image_or_video_shape: [1, 21, x, 60, 104]\n"),
                        {"key 'image_or_video_shape'", "list of integers", "element 2"});
  expect_error_contains(with("negative_prompt: [a, b]\n"),
                        {"key 'negative_prompt'", "want a string"});
  expect_error_contains(with("real_score_grad:\n  model: nope\n"),
                        {"key 'real_score_grad'", "'model' is not true/false"});
  expect_error_contains(with("fake_score_grad: true\n"), {"key 'fake_score_grad'", "a map"});
  expect_error_contains(with("model_dim: 1e3\n"), {"key 'model_dim'", "an integer or null"});
  expect_error_contains(
      [] {
        core::parse_config("model_name: wan\nlr: fast\n", "u.yaml");
      },
      {"u.yaml:2", "key 'lr'", "'fast'", "want a number"});
}

TEST(Config, MissingRequiredKeys) {
  std::string no_lr = kMinimalOde;
  no_lr.erase(no_lr.find("lr: 2.0e-06\n"), 12);
  expect_error_contains([&] { core::parse_config(no_lr, "m.yaml"); },
                        {"m.yaml: missing required key 'lr'", "want a number"});
  // ODE runs need no latent shape; DMD runs do.
  core::parse_config(kMinimalOde, "m.yaml");
  std::string dmd = std::string(kMinimalOde);
  dmd.replace(dmd.find("distillation_loss: ode"), 22, "distillation_loss: dmd");
  expect_error_contains([&] { core::parse_config(dmd, "m.yaml"); },
                        {"missing required key", "required when distillation_loss is dmd"});
  expect_error_contains(
      [&] {
        core::parse_config(dmd +
                               "num_train_timestep: 1000\nreal_guidance_scale: 3.5\n"
                               "denoising_loss_type: flow\ndfake_gen_update_ratio: 5\n"
                               "negative_prompt: ''\n",
                           "m.yaml");
      },
      {"missing required key 'image_or_video_shape'", "list of integers"});
}

TEST(Config, MalformedYamlNamesFileAndLine) {
  expect_error_contains(
      [] { core::parse_config("model_name: wan\nlr: [1, 2\nseed: 3\n", "bad.yaml"); },
      {"bad.yaml:", "malformed YAML"});
  try {
    core::parse_config("lr: 1.0\nseed: 2\n  log_iters: 3\n", "bad.yaml");
    ADD_FAILURE() << "expected an error";
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("bad.yaml:3:"), std::string::npos) << msg;
  }
  expect_error_contains([] { core::parse_config("", "empty.yaml"); },
                        {"empty.yaml", "empty config"});
  expect_error_contains([] { core::parse_config("- a\n- b\n", "list.yaml"); },
                        {"list.yaml", "want a map"});
  expect_error_contains([] { core::read_config("/nonexistent/c.yaml"); },
                        {"/nonexistent/c.yaml", "not found"});
  expect_error_contains(
      [] { core::parse_config(std::string(kMinimalOde) + "lr: 1.0\n", "dup.yaml"); },
      {"dup.yaml:9", "'lr' given twice"});
}

TEST(Config, SetOverrides) {
  Config c = core::load_config(config_path("wan_causal_dmd.yaml"));
  core::apply_overrides(c, {"lr=1e-5", "denoising_step_list=[1000,757,522]",
                            "negative_prompt=low quality", "generator_ckpt=",
                            "model_dim=128", "generator_grad={model: false}",
                            "guidance_scale=2.5", "wandb_name=ignored", "max_iters=7"});
  EXPECT_DOUBLE_EQ(c.lr, 1e-5);
  EXPECT_EQ(c.denoising_step_list, (std::vector<int>{1000, 757, 522}));
  EXPECT_EQ(c.negative_prompt, "low quality");
  EXPECT_EQ(c.generator_ckpt, "");
  ASSERT_TRUE(c.model_dim.has_value());
  EXPECT_EQ(*c.model_dim, 128);
  EXPECT_FALSE(c.generator_grad.at("model"));
  EXPECT_DOUBLE_EQ(c.real_guidance_scale, 2.5);
  EXPECT_EQ(c.max_iters, 7);
  core::apply_overrides(c, {"model_dim=null"});
  EXPECT_FALSE(c.model_dim.has_value());

  expect_error_contains([&] { core::apply_overrides(c, {"num_frame_per_blok=3"}); },
                        {"--set: unknown key 'num_frame_per_blok'",
                         "did you mean 'num_frame_per_block'?"});
  expect_error_contains([&] { core::apply_overrides(c, {"lr=abc"}); },
                        {"--set lr=abc", "key 'lr'", "want a number"});
  expect_error_contains([&] { core::apply_overrides(c, {"denoising_step_list=[1000, x]"}); },
                        {"key 'denoising_step_list'", "element 1"});
  expect_error_contains([&] { core::apply_overrides(c, {"lr"}); }, {"--set lr", "key=value"});
  expect_error_contains([&] { core::apply_overrides(c, {"lr=[1,"}); },
                        {"--set lr=[1,", "malformed YAML"});
  // Overrides go through validate() in load_config.
  expect_error_contains(
      [] { core::load_config(config_path("wan_causal_dmd.yaml"), {"num_frame_per_block=4"}); },
      {"image_or_video_shape", "F = 21", "multiple of num_frame_per_block (4)"});
}

// Applies overrides to a valid config and expects validate() to fail with every needle.
void expect_invalid(const std::string& config, const std::vector<std::string>& overrides,
                    std::initializer_list<std::string> needles) {
  SCOPED_TRACE(overrides.empty() ? config : overrides[0]);
  Config c = core::read_config(config_path(config));
  core::apply_overrides(c, overrides);
  expect_error_contains([&] { c.validate(); }, needles);
}

TEST(Config, ValidateFailures) {
  const std::string dmd = "wan_causal_dmd.yaml", bidir = "wan_bidirectional_dmd.yaml";
  const std::string src = config_path(dmd);
  expect_invalid(dmd, {"image_or_video_shape=[1, 20, 16, 60, 104]"},
                 {src, "key 'image_or_video_shape'", "F = 20",
                  "multiple of num_frame_per_block (3)"});
  expect_invalid(dmd, {"denoising_step_list=[1000, 522, 757, 0]"},
                 {"key 'denoising_step_list'", "strictly descending"});
  expect_invalid(dmd, {"denoising_step_list=[1000, 757, 522]"},
                 {"key 'denoising_step_list'", "last step of 0", "causal_video"});
  expect_invalid(dmd, {"denoising_step_list=[1200, 757, 0]"}, {"values in [0, 1000]"});
  expect_invalid(dmd, {"denoising_step_list=[]"}, {"denoising_step_list", "at least one"});
  expect_invalid(dmd, {"lr=0"}, {"key 'lr'", "want > 0"});
  expect_invalid(dmd, {"lr=-1e-5"}, {"key 'lr'", "want > 0"});
  expect_invalid(dmd, {"lr_critic=0"}, {"key 'lr_critic'", "want > 0"});
  expect_invalid(dmd, {"beta2=1.0"}, {"key 'beta2'", "[0, 1)"});
  expect_invalid(dmd, {"batch_size=0"}, {"key 'batch_size'", ">= 1"});
  expect_invalid(dmd, {"dfake_gen_update_ratio=0"}, {"key 'dfake_gen_update_ratio'", ">= 1"});
  expect_invalid(dmd, {"model_dim=1000"},
                 {"key 'model_dim'", "multiple of model_num_heads (12)"});
  expect_invalid(dmd, {"model_dim=36", "model_num_heads=4"}, {"head dim", "even"});
  expect_invalid(dmd, {"image_or_video_shape=[1, 21, 4, 60, 104]"},
                 {"image_or_video_shape", "C = 4", "in_dim 16"});
  expect_invalid(dmd, {"image_or_video_shape=[1, 21, 16, 61, 104]"},
                 {"image_or_video_shape", "multiples of the patch size"});
  expect_invalid(dmd, {"image_or_video_shape=[1, 21, 16, 60]"},
                 {"image_or_video_shape", "5 values [B, F, C, H, W]"});
  expect_invalid(dmd, {"generator_task=bidirectional_video"},
                 {"key 'generator_task'", "causal_wan", "want causal_video"});
  expect_invalid(bidir, {"generator_task=causal_video", "denoising_step_list=[1000, 500, 0]"},
                 {"key 'generator_task'", "want bidirectional_video"});
  expect_invalid(dmd, {"real_task_type=causal_video"},
                 {"key 'real_task_type'", "want bidirectional_video"});
  expect_invalid(dmd, {"distillation_loss=gan"}, {"key 'distillation_loss'", "ode | dmd"});
  expect_invalid(dmd, {"model_name=sdxl"}, {"key 'model_name'", "wan | causal_wan"});
  expect_invalid(dmd, {"denoising_loss_type=noise"}, {"key 'denoising_loss_type'", "flow | x0"});
  expect_invalid(dmd, {"sharding_strategy=half"}, {"key 'sharding_strategy'", "hybrid_full"});
  expect_invalid(dmd, {"generator_fsdp_wrap_strategy=transformer"},
                 {"key 'generator_fsdp_transformer_module'", "block class"});
  expect_invalid(dmd, {"generator_fsdp_wrap_strategy=layer"},
                 {"key 'generator_fsdp_wrap_strategy'", "size | transformer"});
  expect_invalid(dmd, {"num_train_timestep=800", "denoising_step_list=[800, 400, 0]",
                       "warp_denoising_step=true"},
                 {"key 'num_train_timestep'", "want 1000 when warp_denoising_step"});
  expect_invalid(dmd, {"timestep_shift=0"}, {"key 'timestep_shift'", "> 0"});
  expect_invalid(dmd, {"device=gpu"}, {"key 'device'", "cuda:N"});
  expect_invalid(dmd, {"model_preset=wan-2b"}, {"key 'model_preset'", "wan-1.3b | wan-14b | wan-mid"});
  expect_invalid(dmd, {"generator_grad={modle: true}"},
                 {"key 'generator_grad'", "submodule 'modle'", "want model"});
  expect_invalid(dmd, {"num_frame_per_block=0"}, {"key 'num_frame_per_block'", ">= 1"});
  expect_invalid(dmd, {"ema_weight=1.5"}, {"key 'ema_weight'", "[0, 1)"});
  expect_invalid(dmd, {"grad_clip=0"}, {"key 'grad_clip'", "> 0"});
  expect_invalid("wan_causal_ode.yaml", {"generator_name=wan"},
                 {"key 'generator_name'", "builds the generator from model_name"});
  // Bidirectional configs need not end with 0, and F need not divide by the block size.
  Config b = core::read_config(config_path(bidir));
  core::apply_overrides(b, {"num_frame_per_block=4"});
  b.validate();
}

TEST(Config, SaveLoadRoundTrip) {
  TempDir dir;
  std::vector<std::string> names = kCausVidConfigs;
  names.insert(names.end(), kTinyConfigs.begin(), kTinyConfigs.end());
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    Config c = core::load_config(config_path(name));
    std::string path = dir.file(name);
    core::save_config(c, path);
    Config back = core::load_config(path);
    EXPECT_TRUE(back == c);
    // Identical text but for the first line, which names the source.
    auto body = [](const std::string& y) { return y.substr(y.find('\n')); };
    EXPECT_EQ(body(core::config_to_yaml(back)), body(core::config_to_yaml(c)));
  }
  // Optionals, tricky strings and odd doubles survive too.
  Config c = core::load_config(config_path("wan_causal_dmd.yaml"));
  core::apply_overrides(c, {"lr_critic=4.0e-7", "model_num_layers=4", "seed=12345678901",
                            "data_path='null'", "output_path='123'", "resume='true'",
                            "generator_ckpt='a: b # c'", "lr=0.1", "timestep_shift=3",
                            "beta2=0.95"});
  c.negative_prompt += "\n\"quoted\"\ttab";
  c.weight_decay = 1.0 / 3.0;
  c.ema_weight = 0.1 + 0.2;
  c.real_guidance_scale = 1e300;
  std::string yaml = core::config_to_yaml(c);
  EXPECT_NE(yaml.find("\xe8\x89\xb2\xe8\xb0\x83"), std::string::npos) << "UTF-8 kept as is";
  EXPECT_NE(yaml.find("lr: 0.1\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("timestep_shift: 3.0\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("grad_clip: 10.0\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("beta2: 0.95\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("lr_critic: 4.0e-07\n"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("seed: 12345678901\n"), std::string::npos) << yaml;
  EXPECT_EQ(yaml.find("model_dim:"), std::string::npos) << "unset optionals are left out";
  Config back = core::parse_config(yaml, "saved.yaml");
  EXPECT_TRUE(back == c);
  EXPECT_EQ(back.data_path, "null");
  EXPECT_EQ(back.output_path, "123");
  EXPECT_EQ(back.resume, "true");
  EXPECT_EQ(back.generator_ckpt, "a: b # c");
  EXPECT_EQ(back.seed, 12345678901LL);
  EXPECT_EQ(back.negative_prompt, c.negative_prompt);
  ASSERT_TRUE(back.model_num_layers.has_value());
  EXPECT_EQ(models::wan_config(back).num_layers, 4);
  Config d = back;
  d.lr_critic.reset();
  EXPECT_FALSE(d == back);
}

TEST(Config, ListedKeysCoverEveryCausVidKey) {
  std::set<std::string> known;
  for (const auto& k : core::config_keys()) known.insert(k.name);
  for (const char* k :
       {"model_name", "generator_name", "generator_ckpt", "generator_fsdp_wrap_strategy",
        "real_score_fsdp_wrap_strategy", "fake_score_fsdp_wrap_strategy",
        "generator_grad", "real_score_grad",
        "fake_score_grad", "denoising_step_list", "num_train_timestep", "timestep_shift",
        "real_guidance_scale", "generator_task", "real_task_type", "fake_task_type",
        "denoising_loss_type", "mixed_precision", "seed", "sharding_strategy", "lr", "beta1",
        "beta2", "data_path", "batch_size", "log_iters", "negative_prompt",
        "dfake_gen_update_ratio", "image_or_video_shape", "output_path", "distillation_loss",
        "gradient_checkpointing", "backward_simulation", "num_frame_per_block",
        "warp_denoising_step", "ema_weight", "ema_start_step", "lr_critic", "beta1_critic",
        "beta2_critic", "weight_decay", "grad_clip", "max_iters", "keep_latest",
        "num_workers", "device", "model_preset", "checkpoint_dir", "prompt_cache",
        "text_encoder_path", "vae_path"})
    EXPECT_TRUE(known.count(k)) << k;
}

TEST(Config, EditDistance) {
  EXPECT_EQ(core::edit_distance("num_frame_per_blok", "num_frame_per_block"), 1);
  EXPECT_EQ(core::edit_distance("lr", "lr"), 0);
  EXPECT_EQ(core::edit_distance("betta1", "beta1"), 1);
  EXPECT_EQ(core::edit_distance("btea1", "beta1"), 1);  // adjacent swap
  EXPECT_EQ(core::edit_distance("bate1", "beta1"), 2);
  EXPECT_EQ(core::edit_distance("", "abc"), 3);
}

TEST(Config, CliPrintsResolvedConfig) {
  TempDir dir;
  std::string out;
  std::string bin = testing::causvid_binary();
  std::string cfg = config_path("tiny_dmd.yaml");
  std::string saved = dir.file("resolved.yaml");
  ASSERT_EQ(testing::run_command(bin + " config --config " + cfg +
                                     " --set lr=3e-4 --set 'denoising_step_list=[1000, 500, 0]'"
                                     " --out " + saved,
                                 &out),
            0)
      << out;
  EXPECT_NE(out.find("lr: 0.0003\n"), std::string::npos) << out;
  EXPECT_NE(out.find("denoising_step_list: [1000, 500, 0]"), std::string::npos) << out;
  Config c = core::load_config(saved);
  EXPECT_DOUBLE_EQ(c.lr, 3e-4);

  EXPECT_EQ(testing::run_command(bin + " config --config " + cfg + " --set num_frame_per_blok=1",
                                 &out),
            1);
  EXPECT_NE(out.find("did you mean 'num_frame_per_block'?"), std::string::npos) << out;
}

// LoRA keys: FastVideo-style flat keys, or LongLive's adapter block, which wins where it speaks.
TEST(Config, LoraKeysAndLongLivesAdapterBlock) {
  auto c = core::load_config(config_path("wan_causal_dmd.yaml"),
                             {"lora_rank=16", "lora_alpha=32", "lora_target_modules=[q, v]"});
  EXPECT_EQ(c.lora().rank, 16);
  EXPECT_EQ(c.lora().alpha, 32);
  EXPECT_EQ(c.lora().targets, (std::vector<std::string>{"q", "v"}));
  auto l = core::load_config(config_path("wan_causal_dmd.yaml"),
                             {"adapter={type: lora, rank: 256, alpha: 128, dropout: 0.1, "
                              "dtype: bfloat16, verbose: false}"});
  EXPECT_EQ(l.lora().rank, 256);
  EXPECT_EQ(l.lora().alpha, 128);
  EXPECT_DOUBLE_EQ(l.lora().dropout, 0.1);
  EXPECT_TRUE(l.lora().critic) << "LongLive's default: apply_to_critic true";
  auto nc = core::load_config(config_path("wan_causal_dmd.yaml"),
                              {"adapter={type: lora, rank: 8, apply_to_critic: false}"});
  EXPECT_FALSE(nc.lora().critic);
  expect_invalid("wan_causal_dmd.yaml", {"adapter={type: lora}"}, {"'adapter'", "no rank"});
  expect_invalid("wan_causal_dmd.yaml", {"adapter={type: dora, rank: 8}"}, {"'adapter'", "dora"});
  expect_invalid("wan_causal_dmd.yaml", {"adapter={type: lora, rnak: 8}"}, {"'adapter'", "rnak"});
  expect_invalid("wan_causal_dmd.yaml", {"adapter={rank: big}"}, {"'adapter'", "big"});
  expect_invalid("wan_causal_dmd.yaml", {"lora_rank=-1"}, {"'lora_rank'"});
  expect_invalid("wan_causal_dmd.yaml", {"lora_dropout=1.5"}, {"'lora_dropout'"});
  expect_invalid("wan_causal_dmd.yaml", {"lora_critic=true"}, {"'lora_critic'", "lora_rank"});
}

// Invalid UTF-8 in a config is refused naming the line, as in prompt files.
TEST(Config, InvalidUtf8IsRefusedNamingTheLine) {
  TempDir d;
  core::write_file_atomic(d.file("u.yaml"), "lr: 0.001\nnegative_prompt: \"a\xFF" "b\"\n");
  expect_error_contains([&] { core::read_config(d.file("u.yaml")); },
                        {d.file("u.yaml") + ":2", "invalid UTF-8", "byte 19"});
}

}  // namespace
}  // namespace causvid
