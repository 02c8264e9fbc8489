// trainer/stages/self_forcing_stage.cpp: Self-Forcing's DMD (guandeh17/Self-Forcing
// model/dmd.py, model/base.py SelfForcingModel, trainer/distillation.py): the causal
// generator is rolled out block by block with its KV cache from pure noise
// (inference/self_forcing_rollout.h: only the exit step's call carries gradient), and the
// rollout is regressed along the DMD gradient between the frozen real score (CFG; it may be
// larger than the generator) and the critic, which learns the rollouts' distribution with
// the flow-matching loss. With ts_schedule the DMD and critic timesteps are drawn above the
// exit step's lower end. Text-to-video needs prompts only; image-to-video (i2v) starts each
// rollout from the first clean latent frame of the data (cached as a clean frame first).
//
// A rollout longer than the training length F is cut to its last F frames. As the reference,
// with num_training_frames > F or i2v, the window's first latent frame is re-encoded through
// the VAE from the last pixel frame of the latents before the window's last F - 1 frames
// (so it stands as a video's first frame would); with long_rollout_frames (long tuning) the
// generated latents of the window are kept. Either way, a rollout of more blocks than F
// holds leaves the window's first block out of the DMD loss (the reference's gradient_mask).
//
// Differences from the reference, all documented in docs/self_forcing.md: one batch serves
// the generator and the critic update of a step (the reference draws a second batch for the
// critic); total_batch_size accumulates gradients (the reference reads the key but runs one
// batch per update).
#include <torch/torch.h>

#include <tuple>

#include "inference/generate.h"  // load_vae
#include "inference/self_forcing_rollout.h"
#include "inference/step_list.h"
#include "losses/losses.h"
#include "trainer/stage.h"
#include "trainer/stages/score_models.h"

namespace causvid::trainer {
namespace {

class SelfForcingStage : public ScoreDistillationStage {
 public:
  explicit SelfForcingStage(StageEnv& env) : ScoreDistillationStage(env) {
    const auto& c = env.cfg;
    ro_.step_list = inference::sampling_step_list(c);
    ro_.num_frame_per_block = c.num_frame_per_block;
    ro_.same_step_across_blocks = c.same_step_across_blocks;
    ro_.context_noise = c.context_noise;
    ro_.grad_frames = env.frame_shape[0];
    std::tie(ro_.window_frames, ro_.sink_frames) = c.attention_window();
    rollout_frames_ = c.long_rollout_frames > 0 ? c.long_rollout_frames : c.num_training_frames;
    if (c.i2v || c.num_training_frames > env.frame_shape[0]) {
      vae_ = inference::load_vae(c.vae_file());
      vae_->to(env.device, c.mixed_precision ? torch::kBFloat16 : torch::kFloat32);
    }
  }

  bool needs_latents() const override { return env_.cfg.i2v; }

  std::map<std::string, double> step(const StepInput& in) override {
    const auto& c = env_.cfg;
    std::map<std::string, double> m;
    auto fake_scope = fake_->sharded().gathered();
    if (gen_->trainable() && in.step % c.dfake_gen_update_ratio == 0) {
      auto real_scope = real_->sharded().gathered();
      auto gen_scope = gen_->sharded().gathered();
      m["generator_loss"] = accumulate(
          in, [&](const MicroBatch& mb, std::map<std::string, double>& mm) {
            return generator_loss(mb, mm);
          }, m);
      m["generator_grad_norm"] = update_generator(in.step);
    }
    if (fake_->trainable()) {
      m["critic_loss"] = accumulate(
          in, [&](const MicroBatch& mb, std::map<std::string, double>&) {
            return critic_loss(mb);
          }, m);
      m["critic_grad_norm"] = update_critic(in.step);
    }
    return m;
  }

 private:
  // A value drawn on rank 0 and broadcast (Self-Forcing synchronises the rollout's length
  // and exit steps across ranks so that every rank runs the same number of calls).
  std::vector<int64_t> from_rank0(std::vector<int64_t> v) {
    if (env_.dist->world_size() > 1) {
      const auto& world = env_.dist->world();
      auto t = torch::tensor(v, torch::kLong).to(world.device());  // NCCL: on the GPU
      world.broadcast(t, 0);
      t = t.cpu();
      v.assign(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
    }
    return v;
  }

  struct Sample {
    torch::Tensor video;  // [B, F, C, H, W]: the last F frames of the rollout
    std::optional<int64_t> from, to;
    torch::Tensor mask;   // frames in the DMD loss ([1, F, 1, 1, 1] bool), or undefined = all
  };

  // SelfForcingModel._run_generator: the rollout's length (drawn between F and
  // long_rollout_frames), its noise, the exit steps, the rollout, the last F frames. A
  // rollout cut to its last F frames leaves the window's first block out of the DMD loss
  // (the reference's gradient_mask: that block stands where a video's first frame would).
  Sample rollout(const MicroBatch& mb) {
    const int64_t B = mb.cond.size(0), F = env_.frame_shape[0];
    const int64_t nfpb = ro_.num_frame_per_block;
    const int64_t blocks = from_rank0({env_.rng
                                           .randint(F / nfpb, rollout_frames_ / nfpb + 1, {1},
                                                    torch::TensorOptions().dtype(torch::kLong))
                                           .item<int64_t>()})[0];
    auto shape = env_.batch_shape(B);
    shape[1] = blocks * nfpb;
    auto noise = env_.randn(shape);
    const int64_t S = static_cast<int64_t>(ro_.step_list.size());
    auto exits = from_rank0(
        inference::draw_exit_steps(env_.rng, blocks, S, env_.cfg.last_step_only));
    torch::Tensor image;  // i2v: the clean latents' first frame [B, 1, C, H, W]
    if (env_.cfg.i2v) image = mb.batch->latents.select(1, -1).slice(1, 0, 1).to(noise.dtype());
    auto r = inference::self_forcing_rollout(gen_->wrap(), noise, mb.cond, image, exits,
                                             env_.rng, ro_);
    Sample s{r.video, r.timestep_from, r.timestep_to};
    if (s.video.size(1) > F)
      s.video = vae_ ? inference::reencoded_window(*vae_, s.video, F)
                     : s.video.slice(1, s.video.size(1) - F);
    if (blocks * nfpb != F) {
      s.mask = torch::ones({1, F, 1, 1, 1}, torch::kBool);
      s.mask.slice(1, 0, nfpb).fill_(false);
    }
    return s;
  }

  // DMD._get_timestep(uniform_timestep=True) within the schedule's range, shifted and
  // clamped to [0.02 T, 0.98 T] as compute_distribution_matching_loss / critic_loss do.
  torch::Tensor sample_t(int64_t B, int64_t F, const Sample& s) {
    const auto& c = env_.cfg;
    const int64_t T = c.num_train_timestep;
    const int64_t lo = c.ts_schedule && s.to ? *s.to : c.min_score_timestep;
    const int64_t hi = c.ts_schedule_max && s.from ? *s.from : T;
    TORCH_CHECK(lo < hi, "self_forcing: empty timestep range [", lo, ", ", hi, ")");
    auto raw = env_.rng.randint(lo, hi, {B, 1}, torch::TensorOptions().dtype(torch::kLong))
                   .repeat({1, F});
    return models::shift_timestep(raw, c.timestep_shift, static_cast<int64_t>(0.02 * T),
                                  static_cast<int64_t>(0.98 * T), T)
        .to(env_.device);
  }

  torch::Tensor generator_loss(const MicroBatch& mb, std::map<std::string, double>& m) {
    const auto& c = env_.cfg;
    const int64_t B = mb.cond.size(0);
    auto s = rollout(mb);
    auto t = sample_t(B, s.video.size(1), s);
    auto noise = env_.randn(s.video.sizes());
    losses::DmdOptions o;
    o.real_guidance_scale = c.real_guidance_scale;
    o.fake_guidance_scale = c.fake_guidance_scale;
    o.scheduler = &gen_->wrap().scheduler();
    o.mask = s.mask;
    auto out = losses::dmd_loss(real_->wrap(), fake_->wrap(), s.video, t, noise, mb.cond,
                                env_.uncond(B), o);
    m["dmd_gradient_norm"] = out.metrics.at("dmd_gradient_norm");
    return out.loss;
  }

  torch::Tensor critic_loss(const MicroBatch& mb) {
    const auto& c = env_.cfg;
    const int64_t B = mb.cond.size(0);
    Sample s;
    {
      torch::NoGradGuard ng;
      auto gen_scope = gen_->sharded().gathered();
      s = rollout(mb);
    }
    auto t = sample_t(B, s.video.size(1), s);
    auto noise = env_.randn(s.video.sizes());
    return losses::critic_loss(fake_->wrap(), s.video, t, noise, mb.cond, c.denoising_loss_type,
                               &gen_->wrap().scheduler())
        .loss;
  }

  inference::RolloutOptions ro_;
  int64_t rollout_frames_ = 0;
  std::unique_ptr<models::WanVAEWrapper> vae_;  // i2v or num_training_frames > F
};

}  // namespace

void register_self_forcing_stage() {
  register_stage("self_forcing",
                 [](StageEnv& env) { return std::make_unique<SelfForcingStage>(env); });
}

}  // namespace causvid::trainer
