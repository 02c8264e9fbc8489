// tests/core/self_forcing_config_test.cpp: Self-Forcing's configs load as its train.py reads
// them (configs/self_forcing_dmd.yaml merged over configs/default_config.yaml), every key
// honoured or rejected by name; and the family's bad inputs give errors naming the key.
#include <gtest/gtest.h>

#include "core/config.h"
#include "core/fs.h"
#include "models/wan/presets.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

// The keys and values of guandeh17/Self-Forcing configs/default_config.yaml.
const char* kSelfForcingDefaults = R"(independent_first_frame: false
warp_denoising_step: false
weight_decay: 0.01
same_step_across_blocks: true
discriminator_lr_multiplier: 1.0
last_step_only: false
i2v: false
num_training_frames: 21
gc_interval: 100
context_noise: 0
causal: true

ckpt_step: 0
prompt_name: MovieGenVideoBench
prompt_path: prompts/MovieGenVideoBench.txt
eval_first_n: 64
num_samples: 1
height: 480
width: 832
num_frames: 81
)";

// The keys and values of configs/self_forcing_dmd.yaml (negative prompt shortened).
const char* kSelfForcingDmd = R"(generator_ckpt: checkpoints/ode_init.pt
generator_fsdp_wrap_strategy: size
real_score_fsdp_wrap_strategy: size
fake_score_fsdp_wrap_strategy: size
real_name: Wan2.1-T2V-14B
text_encoder_fsdp_wrap_strategy: size
denoising_step_list:
- 1000
- 750
- 500
- 250
warp_denoising_step: true # need to remove - 0 in denoising_step_list if warp_denoising_step is true
ts_schedule: false
num_train_timestep: 1000
timestep_shift: 5.0
guidance_scale: 3.0
denoising_loss_type: flow
mixed_precision: true
seed: 0
wandb_host: WANDB_HOST
wandb_key: WANDB_KEY
wandb_entity: WANDB_ENTITY
wandb_project: WANDB_PROJECT
sharding_strategy: hybrid_full
lr: 2.0e-06
lr_critic: 4.0e-07
beta1: 0.0
beta2: 0.999
beta1_critic: 0.0
beta2_critic: 0.999
data_path: prompts/vidprom_filtered_extended.txt
batch_size: 1
ema_weight: 0.99
ema_start_step: 200
total_batch_size: 64
log_iters: 50
negative_prompt: '色调艳丽，过曝，静态'
dfake_gen_update_ratio: 5
image_or_video_shape:
- 1
- 21
- 16
- 60
- 104
distribution_loss: dmd
trainer: score_distillation
gradient_checkpointing: true
num_frame_per_block: 3
load_raw_video: false
model_kwargs:
  timestep_shift: 5.0
)";

struct SfConfigs {
  testing::TempDir dir;
  std::string path = dir.file("self_forcing_dmd.yaml");
  SfConfigs() {
    core::write_file_atomic(dir.file("default_config.yaml"), kSelfForcingDefaults);
    core::write_file_atomic(path, kSelfForcingDmd);
  }
};

TEST(SelfForcingConfig, LoadsMergedOverItsDefaultsWithEveryKeyHonoured) {
  SfConfigs f;
  auto c = core::load_config(f.path);  // default_config.yaml beside it is merged
  EXPECT_EQ(c.distillation_loss, "self_forcing");
  EXPECT_TRUE(c.is_dmd() && c.is_self_forcing());
  EXPECT_EQ(c.generator_model(), "causal_wan");
  EXPECT_TRUE(c.is_causal());
  EXPECT_EQ(c.real_model(), "wan");
  EXPECT_EQ(c.real_task(), "bidirectional_video");
  EXPECT_DOUBLE_EQ(c.generator_scheduler_shift(), 5.0);
  EXPECT_DOUBLE_EQ(c.scheduler_shift, 8.0) << "the scores keep the wrapper's default grid";
  EXPECT_DOUBLE_EQ(c.real_guidance_scale, 3.0);
  EXPECT_DOUBLE_EQ(c.critic_lr(), 4e-7);
  EXPECT_DOUBLE_EQ(c.critic_beta1(), 0.0);
  EXPECT_EQ(c.total_batch_size, 64);
  EXPECT_EQ(c.accumulation_steps(64), 1);
  EXPECT_EQ(c.accumulation_steps(8), 8);
  EXPECT_EQ(c.num_training_frames, 21);  // from default_config.yaml
  EXPECT_TRUE(c.same_step_across_blocks);
  EXPECT_FALSE(c.ts_schedule);
  EXPECT_TRUE(c.causal.value_or(false));
  EXPECT_EQ(c.real_dit_file(), "wan_models/Wan2.1-T2V-14B");
  const auto real = models::real_score_config(c), gen = models::wan_config(c);
  EXPECT_EQ(real.dim, 5120);
  EXPECT_EQ(real.num_layers, 40);
  EXPECT_EQ(gen.dim, 1536);
  // The saved config reads back to the same run without the defaults file.
  core::write_file_atomic(f.dir.file("saved.yaml"), core::config_to_yaml(c));
  EXPECT_EQ(core::load_config(f.dir.file("saved.yaml"), {}, ""), c);
}

TEST(SelfForcingConfig, WithoutItsDefaultsTheTrainingLengthFallsBackAndStillLoads) {
  testing::TempDir d;
  core::write_file_atomic(d.file("sf.yaml"), kSelfForcingDmd);
  auto c = core::load_config(d.file("sf.yaml"));
  EXPECT_EQ(c.num_training_frames, 21);  // Self-Forcing's getattr default
}

TEST(SelfForcingConfig, BadInputsNameTheKey) {
  SfConfigs f;
  // A bidirectional generator cannot roll out with a KV cache.
  testing::expect_error_contains(
      [&] { core::load_config(f.path, {"generator_name=wan", "causal=false",
                                       "generator_task=bidirectional_video"}); },
      {"generator_name", "self_forcing", "causal"});
  // `causal` must agree with the generator.
  testing::expect_error_contains(
      [&] { core::load_config(f.path, {"causal=false"}); }, {"'causal'", "causal_wan"});
  // total_batch_size not divisible by batch_size x world size.
  auto c = core::load_config(f.path);
  testing::expect_error_contains([&] { c.accumulation_steps(3); },
                                 {"total_batch_size", "64", "3"});
  testing::expect_error_contains([&] { core::load_config(f.path, {"total_batch_size=-1"}); },
                                 {"total_batch_size"});
  // Rollouts past the training length: num_training_frames (a multiple of the block size,
  // re-encoding through the VAE) or long_rollout_frames, not both.
  EXPECT_EQ(core::load_config(f.path, {"num_training_frames=27"}).num_training_frames, 27);
  testing::expect_error_contains(
      [&] { core::load_config(f.path, {"num_training_frames=25"}); },
      {"num_training_frames", "multiple of num_frame_per_block"});
  testing::expect_error_contains(
      [&] { core::load_config(f.path, {"num_training_frames=18"}); },
      {"num_training_frames", ">= image_or_video_shape[1] = 21"});
  testing::expect_error_contains(
      [&] { core::load_config(f.path, {"num_training_frames=24", "long_rollout_frames=30"}); },
      {"num_training_frames", "long_rollout_frames", "set one"});
  // i2v and the re-encoding need a VAE.
  EXPECT_TRUE(core::load_config(f.path, {"i2v=true"}).i2v);
  testing::expect_error_contains(
      [&] { core::load_config(f.path, {"i2v=true", "vae_path=none"}); },
      {"'vae_path'", "i2v"});
  testing::expect_error_contains(
      [&] { core::load_config(f.path, {"model_kwargs={timestep_shfit: 5}"}); },
      {"model_kwargs", "timestep_shfit"});
  testing::expect_error_contains(
      [&] { core::load_config(f.path, {"real_model_overrides={text_dim: 8}"}); },
      {"real_model_overrides", "text_dim"});
  // Trainer and loss names Self-Forcing has but we do not.
  for (const auto& [key, value, needle] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"distribution_loss", "sid", "SiD"}, {"trainer", "gan", "GAN"}}) {
    testing::TempDir d;
    std::string text = kSelfForcingDmd;
    text += key == "trainer" ? "" : "";
    auto pos = text.find(key + ": ");
    auto eol = text.find('\n', pos);
    text.replace(pos, eol - pos, key + ": " + value);
    core::write_file_atomic(d.file("x.yaml"), text);
    testing::expect_error_contains([&] { core::load_config(d.file("x.yaml")); }, {key, needle});
  }
  // An explicit distillation_loss that disagrees with trainer + distribution_loss.
  {
    testing::TempDir d;
    core::write_file_atomic(d.file("x.yaml"), std::string(kSelfForcingDmd) + "distillation_loss: ode\n");
    testing::expect_error_contains([&] { core::load_config(d.file("x.yaml")); },
                                   {"distillation_loss", "self_forcing"});
  }
  // Training from raw videos is Self-Forcing's load_raw_video; not supported.
  {
    testing::TempDir d;
    std::string text = kSelfForcingDmd;
    text.replace(text.find("load_raw_video: false"), 21, "load_raw_video: true");
    core::write_file_atomic(d.file("x.yaml"), text);
    testing::expect_error_contains([&] { core::load_config(d.file("x.yaml")); },
                                   {"load_raw_video"});
  }
}


// Causal Forcing's configs/ar_diffusion_tf_chunkwise.yaml (its keys; wandb and the negative
// prompt shortened): trainer diffusion with teacher_forcing selects our teacher_forcing stage.
TEST(SelfForcingConfig, CausalForcingsTeacherForcingConfigLoads) {
  SfConfigs f;  // its default_config.yaml is Self-Forcing's
  const std::string text = R"(generator_fsdp_wrap_strategy: size
real_score_fsdp_wrap_strategy: size
fake_score_fsdp_wrap_strategy: size
real_name: Wan2.1-T2V-1.3B
text_encoder_fsdp_wrap_strategy: size
warp_denoising_step: true
ts_schedule: false
num_train_timestep: 1000
timestep_shift: 5.0
guidance_scale: 3.0
denoising_loss_type: flow
mixed_precision: true
seed: 0
wandb_host: https://api.wandb.ai
sharding_strategy: hybrid_full
lr: 2.0e-06
lr_critic: 4.0e-07
beta1: 0.0
beta2: 0.999
beta1_critic: 0.0
beta2_critic: 0.999
batch_size: 1
ema_weight: 0.99
ema_start_step: 2000000000
total_batch_size: 8
log_iters: 1000
negative_prompt: 'static'
dfake_gen_update_ratio: 5
image_or_video_shape: [1, 21, 16, 60, 104]
distribution_loss: dmd
trainer: diffusion
gradient_checkpointing: true
num_frame_per_block: 3
load_raw_video: false
model_kwargs:
  timestep_shift: 5.0
data_path: dataset/clean_data
teacher_forcing: true # TF/DF
)";
  core::write_file_atomic(f.dir.file("ar_diffusion_tf_chunkwise.yaml"), text);
  auto c = core::load_config(f.dir.file("ar_diffusion_tf_chunkwise.yaml"));
  EXPECT_EQ(c.distillation_loss, "teacher_forcing");
  EXPECT_TRUE(c.teacher_forcing);
  EXPECT_EQ(c.generator_model(), "causal_wan");
  EXPECT_EQ(c.accumulation_steps(8), 1);
  EXPECT_EQ(c.accumulation_steps(1), 8);
  testing::expect_error_contains(
      [&] { core::load_config(f.dir.file("ar_diffusion_tf_chunkwise.yaml"),
                              {"noise_augmentation_max_timestep=1000"}); },
      {"noise_augmentation_max_timestep"});
}

}  // namespace
}  // namespace causvid
