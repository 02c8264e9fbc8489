// trainer/trainer.cpp: see trainer.h.
#include "trainer/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>

#include "core/fs.h"
#include "core/log.h"
#include "core/random.h"
#include "core/state_dict.h"
#include "core/tensor_io.h"
#include "data/datasets.h"
#include "data/image_io.h"
#include "data/prompt_cache.h"
#include "data/text_from_config.h"
#include "inference/causal_pipeline.h"
#include "inference/step_list.h"
#include "losses/losses.h"
#include "models/wan/flow_match.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_wrapper.h"
#include "trainer/fsdp.h"
#include "trainer/metrics.h"
#include "trainer/optimizer.h"
#include "trainer/sharded_checkpoint.h"

namespace causvid::trainer {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::string checkpoint_name(int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "checkpoint_model_%06lld", static_cast<long long>(step));
  return buf;
}

std::string latest_complete_checkpoint(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return "";
  static const std::regex re("checkpoint_model_([0-9]{6,})");
  int64_t best = -1;
  std::string best_dir;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || !std::regex_match(name, m, re)) continue;
    if (!fs::exists(e.path() / "trainer_state.json", ec)) continue;
    const int64_t step = std::stoll(m[1].str());
    if (step > best) {
      best = step;
      best_dir = e.path().string();
    }
  }
  return best_dir;
}

namespace {

// ------------------------------------------------------------------ model setup
struct Net {
  std::string name;  // "generator" | "real_score" | "fake_score"
  models::WanModel model{nullptr};
  std::unique_ptr<models::WanDiffusionWrapper> wrap;
  std::unique_ptr<ShardedModule> sharded;
};

// `source`: "random" (Wan's init_weights with `seed`) or a weight file / checkpoint dir.
Net make_net(const core::Config& c, const std::string& name, bool causal, const std::string& source,
             uint64_t seed, std::shared_ptr<core::DistContext> dist, bool trainable) {
  Net n;
  n.name = name;
  n.model = models::WanModel(models::WanConfig::from_dims(c.model_dims()));
  if (source == "random") {
    n.model->init_weights(seed);
  } else {
    models::load_wan_weights(n.model, source, "generator");
  }
  n.model->to(dist->device());
  if (trainable && c.gradient_checkpointing) n.model->set_gradient_checkpointing(true);
  for (auto& p : n.model->parameters()) p.set_requires_grad(trainable);
  n.wrap = std::make_unique<models::WanDiffusionWrapper>(n.model, causal, c.num_frame_per_block,
                                                         c.timestep_shift);
  auto fo = fsdp_options_from_config(c, name);
  fo.trainable = trainable;
  n.sharded = std::make_unique<ShardedModule>(n.model.ptr(), dist, fo);
  return n;
}

// Draws from the CPU generator, then moves to `dev` (core/random.h: a seed means the same
// noise on every device).
torch::Tensor randn(at::IntArrayRef shape, at::Generator& g, torch::Device dev) {
  return core::randn(shape, g, torch::TensorOptions(torch::kFloat32).device(dev));
}

torch::Tensor default_preview(const torch::Tensor& lat_FCHW) {
  auto x = lat_FCHW.to(torch::kFloat32);
  const int64_t C = x.size(1);
  std::vector<torch::Tensor> ch;
  for (int64_t i = 0; i < 3; ++i) ch.push_back(x.select(1, std::min(i, C - 1)));
  auto rgb = torch::stack(ch, 1);
  rgb = ((rgb.clamp(-2, 2) + 2) * (255.0 / 4)).to(torch::kUInt8);
  // Upscale small latents so the sheet is visible.
  const int64_t s = std::max<int64_t>(1, 64 / std::max<int64_t>(1, rgb.size(2)));
  if (s > 1) rgb = rgb.repeat_interleave(s, 2).repeat_interleave(s, 3);
  return rgb;
}

// ------------------------------------------------------------------ the trainer
class Trainer {
 public:
  Trainer(const core::Config& cfg, std::shared_ptr<core::DistContext> dist, const TrainOptions& o)
      : c_(cfg), dist_(std::move(dist)), opts_(o) {}

  TrainResult run();

 private:
  void setup();
  void resume_from(const std::string& dir);
  std::map<std::string, double> train_step();
  void step_dmd(std::map<std::string, double>& m, const data::Batch& b, const torch::Tensor& cond);
  void step_ode(std::map<std::string, double>& m, const data::Batch& b, const torch::Tensor& cond);
  void step_diffusion(std::map<std::string, double>& m, const data::Batch& b,
                      const torch::Tensor& cond);
  torch::Tensor run_generator(const torch::Tensor& cond, const torch::Tensor& clean, bool grad);
  double optimizer_step(ShardedModule& mod, ShardedAdamW& opt, const char* which);
  std::string nonfinite_params(ShardedModule& mod) const;
  void update_ema();
  std::map<std::string, torch::Tensor> ema_full_state();
  std::string save_checkpoint();
  void write_samples();
  torch::Tensor uncond(int64_t B);

  core::Config c_;
  std::shared_ptr<core::DistContext> dist_;
  TrainOptions opts_;
  int64_t seed_ = 0;
  std::optional<at::Generator> rng_;  // CPU generator: every random draw of training
  torch::Device dev_ = torch::kCPU;   // the rank's compute device (DistContext::device())
  std::unique_ptr<models::TextConditioner> text_;
  torch::Tensor uncond1_;  // [1, T, E]
  Net gen_, real_, fake_;
  std::unique_ptr<ShardedAdamW> gen_opt_, fake_opt_;
  std::vector<torch::Tensor> ema_;  // per generator unit, like the master shards
  std::shared_ptr<data::TrainDataset> ds_;
  std::unique_ptr<data::DataLoader> loader_;
  int64_t step_ = 0;
  std::vector<int64_t> frame_shape_;  // [F, C, H, W]
  std::unique_ptr<MetricsLog> metrics_;
  std::string last_ckpt_;
  bool gen_trainable_ = true, fake_trainable_ = true;
  int64_t skipped_updates_ = 0;  // updates skipped for non-finite gradients
  int consecutive_skips_ = 0;
};

torch::Tensor Trainer::uncond(int64_t B) { return uncond1_.expand({B, -1, -1}).contiguous(); }

void Trainer::setup() {
  const auto& c = c_;
  const bool dmd = c.distillation_loss == "dmd";
  dev_ = dist_->device();
  seed_ = core::resolve_seed(c.seed, dist_->world());
  rng_ = at::make_generator<at::CPUGeneratorImpl>(seed_ + dist_->rank());
  torch::manual_seed(seed_ + dist_->rank());
  TORCH_CHECK(c.image_or_video_shape.size() == 5, c.source,
              ": key 'image_or_video_shape': want [B, F, C, H, W]");
  frame_shape_.assign(c.image_or_video_shape.begin() + 1, c.image_or_video_shape.end());
  const auto d = c.model_dims();
  TORCH_CHECK(frame_shape_[1] == d.in_dim, c.source, ": image_or_video_shape has ", frame_shape_[1],
              " channels but the model (", c.model_preset, ") takes ", d.in_dim);

  // Text conditioning (frozen; every rank holds it).
  text_ = data::text_conditioner_from_config(c, dev_);
  TORCH_CHECK(text_->dim() == d.text_dim, "text encoder dim ", text_->dim(), " != model text_dim ",
              d.text_dim);
  // The negative prompt's embedding (CFG's unconditional branch; text dropout).
  if (dmd || (c.distillation_loss == "diffusion" && c.text_dropout > 0)) {
    torch::NoGradGuard ng;
    uncond1_ = text_->encode({c.negative_prompt}).to(dev_, torch::kFloat32);
  }

  // Models.
  const std::string base = c.dit_file();
  const bool gen_causal = c.generator_model() == "causal_wan";
  const std::string gen_src = c.generator_ckpt.empty() ? base : c.generator_ckpt;
  if (!c.generator_ckpt.empty())
    TORCH_CHECK(fs::exists(c.generator_ckpt), c.source, ": key 'generator_ckpt': ",
                c.generator_ckpt, ": no such file or directory");
  // generator_grad / fake_score_grad (CausVid's set_module_grad): a frozen model gets no
  // optimizer and its updates are skipped; the real score is always frozen (validated).
  gen_trainable_ = c.generator_trainable();
  fake_trainable_ = c.fake_score_trainable();
  gen_ = make_net(c, "generator", gen_causal, gen_src, seed_, dist_, gen_trainable_);
  AdamWOptions go;
  go.lr = c.lr;
  go.beta1 = c.beta1;
  go.beta2 = c.beta2;
  go.weight_decay = c.weight_decay;
  if (gen_trainable_)
    gen_opt_ = std::make_unique<ShardedAdamW>(std::vector<ShardedModule*>{gen_.sharded.get()}, go);
  if (dmd) {
    real_ = make_net(c, "real_score", c.real_model() == "causal_wan", base, seed_ + 1, dist_, false);
    fake_ = make_net(c, "fake_score", c.fake_model() == "causal_wan", base, seed_ + 2, dist_,
                     fake_trainable_);
    AdamWOptions fo = go;
    fo.lr = c.critic_lr();
    fo.beta1 = c.critic_beta1();
    fo.beta2 = c.critic_beta2();
    if (fake_trainable_)
      fake_opt_ =
          std::make_unique<ShardedAdamW>(std::vector<ShardedModule*>{fake_.sharded.get()}, fo);
  }
  if (c.ema_weight > 0 && gen_trainable_)
    for (auto& u : gen_.sharded->units()) ema_.push_back(u.shard.clone());

  // Data.
  ds_ = data::open_train_dataset(c.data_path, frame_shape_, c.max_pair);
  const bool needs_latents = c.distillation_loss != "dmd" || !c.backward_simulation;
  TORCH_CHECK(!needs_latents || ds_->has_latents(), c.source, ": key 'data_path': ", c.data_path,
              " holds prompts only, but distillation_loss ", c.distillation_loss,
              (dmd ? " with backward_simulation false" : ""), " needs latents (an LMDB)");
  if (c.distillation_loss == "ode") {
    const int64_t S = ds_->latents(0).size(0);
    TORCH_CHECK(S == static_cast<int64_t>(c.denoising_step_list.size()), c.data_path,
                ": ODE rows hold ", S, " trajectory points, but denoising_step_list has ",
                c.denoising_step_list.size(), " entries");
  }
  LOG_INFO("train: stage %s, generator %s (%s), data %s, world %d, seed %d", c.distillation_loss,
           gen_causal ? "causal" : "bidirectional", gen_src, ds_->describe(), dist_->world_size(),
           seed_);
}

// ------------------------------------------------------------------ generator inputs
// DMD._run_generator: the noisy input at a random index of the denoising step list (per
// frame, processed per generator task), from backward simulation or from noised clean
// latents, and the generator's x0 prediction.
torch::Tensor Trainer::run_generator(const torch::Tensor& cond, const torch::Tensor& clean,
                                     bool grad) {
  const int64_t B = cond.size(0);
  std::vector<int64_t> shape = {B};
  shape.insert(shape.end(), frame_shape_.begin(), frame_shape_.end());
  const auto steps = inference::training_step_list(c_);
  const int64_t S = steps.size(0), F = frame_shape_[0];
  auto& g = *gen_.wrap;
  const auto f32 = torch::TensorOptions(torch::kFloat32).device(dev_);
  std::vector<torch::Tensor> inputs;  // S x [B,F,C,H,W]
  {
    torch::NoGradGuard ng;
    if (c_.backward_simulation && c_.distillation_loss == "dmd") {
      TORCH_CHECK(!g.causal(), c_.source, ": backward_simulation with a causal generator is not "
                  "supported (CausVid's causal configs set backward_simulation: false and take "
                  "clean latents from data_path)");
      // The generator's own few-step sampler from noise; input i = the sample re-noised to
      // step i (the last = the clean output when the list ends with 0).
      auto x = randn(shape, *rng_, dev_);
      for (int64_t i = 0; i < S; ++i) {
        inputs.push_back(x);
        const double ti = steps[i].item<double>();
        if (i + 1 == S) break;
        auto pred = g.forward(x, torch::full({B, F}, ti, f32), cond);
        const double tn = steps[i + 1].item<double>();
        if (tn == 0) {
          x = pred;
        } else {
          auto flat = pred.flatten(0, 1);
          x = g.scheduler().add_noise(flat, randn(flat.sizes(), *rng_, dev_), torch::full({B * F}, tn, f32))
                  .view(pred.sizes());
        }
      }
    } else {
      TORCH_CHECK(clean.defined(), "run_generator: no clean latents");
      for (int64_t i = 0; i < S; ++i) {
        const double ti = steps[i].item<double>();
        auto noise = randn(shape, *rng_, dev_);
        if (ti == 0) {
          inputs.push_back(clean);
        } else {
          inputs.push_back(g.scheduler()
                               .add_noise(clean.flatten(0, 1), noise.flatten(0, 1),
                                          torch::full({B * F}, ti, f32))
                               .view(clean.sizes()));
        }
      }
    }
  }
  auto stacked = torch::stack(inputs, 1);  // [B,S,F,C,H,W]
  auto index = at::randint(0, S, {B, F}, *rng_, torch::TensorOptions().dtype(torch::kLong));
  index = losses::process_timestep(index, c_.generator_task, c_.num_frame_per_block);
  auto gidx = index.to(dev_).view({B, 1, F, 1, 1, 1}).expand({B, 1, F, shape[2], shape[3], shape[4]});
  auto noisy = stacked.gather(1, gidx).squeeze(1);
  auto t = steps.index({index.flatten()}).view({B, F}).to(dev_);
  torch::AutoGradMode ag(grad);
  return g.forward(noisy, t, cond);
}

// Names (up to 5) of the parameters whose gradient on this rank's shard is not finite.
std::string Trainer::nonfinite_params(ShardedModule& mod) const {
  std::vector<std::string> names;
  const int64_t r = mod.shard_group().rank();
  for (const auto& u : mod.units()) {
    if (!u.grad.defined()) continue;
    auto bad = (~torch::isfinite(u.grad)).nonzero().flatten().cpu();
    if (bad.numel() == 0) continue;
    auto a = bad.accessor<int64_t, 1>();
    for (int64_t j = 0; j < bad.numel() && names.size() < 5; ++j) {
      const int64_t off = r * u.shard_numel + a[j];
      for (size_t i = 0; i < u.param_names.size(); ++i) {
        int64_t n = 1;
        for (auto d : u.shapes[i]) n *= d;
        if (off >= u.offsets[i] && off < u.offsets[i] + n &&
            std::find(names.begin(), names.end(), u.param_names[i]) == names.end())
          names.push_back(u.param_names[i]);
      }
    }
  }
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "(none on this rank's shard)" : out;
}

// Reduce, clip, step. A non-finite global gradient norm (every rank sees the same one) skips
// the update: the weights and optimizer state stay as they were, the step is counted, and
// max_nonfinite_skips consecutive skips stop the run.
double Trainer::optimizer_step(ShardedModule& mod, ShardedAdamW& opt, const char* which) {
  mod.reduce_grads();
  const double norm = opt.clip_grad_norm(c_.grad_clip);
  if (!std::isfinite(norm)) {
    ++skipped_updates_;
    ++consecutive_skips_;
    LOG_WARN("step %d: %s gradient norm is %g: update skipped (%d in a row, %d in all); "
             "non-finite gradients in %s",
             step_ + 1, which, norm, consecutive_skips_, skipped_updates_, nonfinite_params(mod));
    opt.zero_grad();
    mod.zero_grad();
    TORCH_CHECK(consecutive_skips_ < c_.max_nonfinite_skips, "step ", step_ + 1, ": ",
                consecutive_skips_, " consecutive updates skipped for non-finite gradients "
                "(max_nonfinite_skips ", c_.max_nonfinite_skips, "): the run diverged; lower "
                "lr or check the data. The last checkpoint (",
                last_ckpt_.empty() ? std::string("none yet") : last_ckpt_, ") is intact");
    return norm;
  }
  consecutive_skips_ = 0;
  opt.step();
  opt.zero_grad();
  mod.zero_grad();
  return norm;
}

void Trainer::update_ema() {
  if (ema_.empty()) return;
  auto& units = gen_.sharded->units();
  torch::NoGradGuard ng;
  for (size_t i = 0; i < units.size(); ++i) {
    if (step_ < c_.ema_start_step) {
      ema_[i].copy_(units[i].shard);
    } else {
      ema_[i].mul_(c_.ema_weight).add_(units[i].shard, 1.0 - c_.ema_weight);
    }
  }
}

// Swaps the EMA into the master shards to gather (or load) a full state dict with the
// sharded module's own collectives.
std::map<std::string, torch::Tensor> Trainer::ema_full_state() {
  auto& units = gen_.sharded->units();
  std::vector<torch::Tensor> saved;
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < units.size(); ++i) {
      saved.push_back(units[i].shard.clone());
      units[i].shard.copy_(ema_[i]);
    }
  }
  auto sd = gen_.sharded->full_state_dict(/*rank0_only=*/true);
  torch::NoGradGuard ng;
  for (size_t i = 0; i < units.size(); ++i) units[i].shard.copy_(saved[i]);
  gen_.sharded->after_step();
  return sd;
}

// ------------------------------------------------------------------ the stages
void Trainer::step_dmd(std::map<std::string, double>& m, const data::Batch& b,
                       const torch::Tensor& cond) {
  const int64_t B = cond.size(0), F = frame_shape_[0];
  auto un = uncond(B);
  torch::Tensor clean;
  if (b.latents.defined()) clean = b.latents.select(1, b.latents.size(1) - 1);
  const double T = c_.num_train_timestep;
  losses::DmdOptions dopt;
  dopt.real_guidance_scale = c_.real_guidance_scale;
  const bool train_gen = gen_trainable_ && step_ % c_.dfake_gen_update_ratio == 0;
  gen_.sharded->gather_params();
  real_.sharded->gather_params();
  fake_.sharded->gather_params();
  if (train_gen) {
    auto x0 = run_generator(cond, clean, true);
    auto t = losses::sample_dmd_timestep(B, F, c_.real_task(), c_.num_frame_per_block,
                                         c_.timestep_shift, 0.02 * T, 0.98 * T, *rng_,
                                         c_.num_train_timestep)
                 .to(dev_);
    auto noise = randn(x0.sizes(), *rng_, dev_);
    auto out = losses::dmd_loss(*real_.wrap, *fake_.wrap, x0, t, noise, cond, un, dopt);
    out.loss.backward();
    m["generator_loss"] = out.loss.item<double>();
    m["generator_grad_norm"] = optimizer_step(*gen_.sharded, *gen_opt_, "generator");
    for (const auto& kv : out.metrics)
      if (kv.first.find("gradient_norm") != std::string::npos) m["dmd_gradient_norm"] = kv.second;
    if (!m.count("dmd_gradient_norm") && out.tensors.count("dmdtrain_gradient_norm"))
      m["dmd_gradient_norm"] = out.tensors.at("dmdtrain_gradient_norm").item<double>();
    update_ema();
    gen_.sharded->gather_params();
  }
  // Critic: flow-matching on the generator's (detached) samples.
  if (!fake_trainable_) {  // fake_score_grad: {model: false}: a fixed critic
    real_.sharded->reshard();
    fake_.sharded->reshard();
    return;
  }
  auto x0 = run_generator(cond, clean, false);
  auto t = losses::sample_dmd_timestep(B, F, c_.fake_task(), c_.num_frame_per_block,
                                       c_.timestep_shift, 0.02 * T, 0.98 * T, *rng_,
                                       c_.num_train_timestep)
               .to(dev_);
  auto noise = randn(x0.sizes(), *rng_, dev_);
  auto out = losses::critic_loss(*fake_.wrap, x0, t, noise, cond, c_.denoising_loss_type);
  out.loss.backward();
  m["critic_loss"] = out.loss.item<double>();
  m["critic_grad_norm"] = optimizer_step(*fake_.sharded, *fake_opt_, "critic");
  real_.sharded->reshard();
}

void Trainer::step_ode(std::map<std::string, double>& m, const data::Batch& b,
                       const torch::Tensor& cond) {
  const int64_t B = cond.size(0), F = frame_shape_[0];
  auto steps = inference::training_step_list(c_);
  auto index = losses::sample_ode_index(B, F, steps.size(0), c_.generator_task,
                                        c_.num_frame_per_block, *rng_);
  gen_.sharded->gather_params();
  auto out = losses::ode_loss(*gen_.wrap, b.latents, index, steps, cond);
  out.loss.backward();
  m["generator_loss"] = out.loss.item<double>();
  m["generator_grad_norm"] = optimizer_step(*gen_.sharded, *gen_opt_, "generator");
  update_ema();
}

// Flow matching (Wan's training objective): t from the shifted 1000-step training grid,
// uniform per sample (per block for causal_video), x_t = (1 - s) x0 + s n, target n - x0.
void Trainer::step_diffusion(std::map<std::string, double>& m, const data::Batch& b,
                             const torch::Tensor& cond_in) {
  const int64_t B = cond_in.size(0), F = frame_shape_[0];
  auto& g = *gen_.wrap;
  auto x0 = b.latents.select(1, b.latents.size(1) - 1);
  auto cond = cond_in;
  if (c_.text_dropout > 0) {
    auto drop = core::rand({B}, *rng_, torch::TensorOptions().device(dev_)) < c_.text_dropout;
    cond = torch::where(drop.view({B, 1, 1}), uncond(B), cond_in);
  }
  const auto& grid = g.scheduler().timesteps;
  auto idx = at::randint(0, grid.size(0), {B, F}, *rng_, torch::TensorOptions().dtype(torch::kLong));
  idx = losses::process_timestep(idx, c_.generator_task, c_.num_frame_per_block);
  auto t = grid.index({idx.flatten()}).view({B, F}).to(dev_);
  auto noise = randn(x0.sizes(), *rng_, dev_);
  auto xt = g.scheduler().add_noise(x0.flatten(0, 1), noise.flatten(0, 1), t.flatten()).view(x0.sizes());
  gen_.sharded->gather_params();
  auto flow = g.flow(xt, t, cond);
  auto loss = torch::mse_loss(flow.to(torch::kFloat32), noise - x0);
  loss.backward();
  m["generator_loss"] = loss.item<double>();
  m["generator_grad_norm"] = optimizer_step(*gen_.sharded, *gen_opt_, "generator");
  update_ema();
}

std::map<std::string, double> Trainer::train_step() {
  std::map<std::string, double> m;
  auto b = loader_->next();
  torch::Tensor cond;
  {
    torch::NoGradGuard ng;
    cond = text_->encode(b.prompts).to(dev_, torch::kFloat32);
  }
  // The loader pins batches on CUDA runs (LoaderOptions::pin_memory), so this copy does
  // not block the host.
  if (b.latents.defined()) b.latents = b.latents.to(dev_, /*non_blocking=*/dev_.is_cuda());
  if (c_.distillation_loss == "dmd") {
    step_dmd(m, b, cond);
  } else if (c_.distillation_loss == "ode") {
    step_ode(m, b, cond);
  } else {
    step_diffusion(m, b, cond);
  }
  if (skipped_updates_ > 0) m["skipped_updates"] = static_cast<double>(skipped_updates_);
  return m;
}

// ------------------------------------------------------------------ checkpoints
std::string Trainer::save_checkpoint() {
  const std::string root = c_.checkpoint_root();
  const std::string name = checkpoint_name(step_);
  const fs::path final_dir = fs::path(root) / name;
  const fs::path tmp = fs::path(root) / ("." + name + ".tmp");
  std::error_code ec;
  if (dist_->is_main()) {
    core::make_dirs(root);
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp / "rng", ec);
    TORCH_CHECK(!ec, tmp.string(), ": cannot create checkpoint directory: ", ec.message());
  }
  dist_->world().barrier();
  json extra = {{"step", step_}};
  save_sharded_checkpoint((tmp / "state_generator").string(), step_,
                          {{"generator", gen_.sharded.get(), ema_.empty() ? nullptr : &ema_}},
                          gen_opt_.get());
  if (fake_.sharded)
    save_sharded_checkpoint((tmp / "state_critic").string(), step_,
                            {{"critic", fake_.sharded.get()}}, fake_opt_.get());
  {
    auto st = rng_->get_state();
    auto t = at::Tensor(std::move(st));
    core::write_file_atomic((tmp / "rng" / ("rank" + std::to_string(dist_->rank()) + ".bin")).string(),
                            std::string(static_cast<const char*>(t.data_ptr()), t.nbytes()));
  }
  auto prefixed = [](const std::map<std::string, torch::Tensor>& sd) {
    core::TensorMap out;
    for (const auto& kv : sd) out["model." + kv.first] = kv.second;
    return out;
  };
  // model.pt (CausVid's layout): gathered one unit at a time and kept on rank 0 only, so
  // no other rank ever holds a full copy of any model.
  auto gsd = gen_.sharded->full_state_dict(/*rank0_only=*/true);
  std::map<std::string, torch::Tensor> csd, esd;
  if (fake_.sharded) csd = fake_.sharded->full_state_dict(/*rank0_only=*/true);
  if (!ema_.empty()) esd = ema_full_state();
  if (dist_->is_main()) {
    std::vector<std::pair<std::string, c10::IValue>> items = {
        {"generator", core::tensor_dict(prefixed(gsd))}};
    if (!csd.empty()) items.push_back({"critic", core::tensor_dict(prefixed(csd))});
    if (!esd.empty()) items.push_back({"generator_ema", core::tensor_dict(prefixed(esd))});
    core::save_torch_checkpoint((tmp / "model.pt").string(), core::nested_dict(items));
    core::save_config(c_, (tmp / "config.yaml").string());
    json st = {{"step", step_},
               {"data_position", loader_->position()},
               {"world_size", dist_->world_size()},
               {"seed", seed_},
               {"stage", c_.distillation_loss}};
    core::write_file_atomic((tmp / "trainer_state.json").string(), st.dump(2) + "\n");
  }
  dist_->world().barrier();
  if (dist_->is_main()) {
    // A directory that leaves the checkpoint set is first renamed out of it (one atomic step:
    // a kill can never leave a half-deleted checkpoint under a checkpoint_model_ name), then
    // removed.
    auto discard = [&](const fs::path& d) {
      const fs::path trash =
          d.parent_path() / ("." + d.filename().string() + ".trash." + std::to_string(::getpid()));
      fs::rename(d, trash, ec);
      TORCH_CHECK(!ec, d.string(), ": cannot move aside: ", ec.message());
      fs::remove_all(trash, ec);
    };
    if (fs::exists(final_dir, ec)) discard(final_dir);
    fs::rename(tmp, final_dir, ec);
    TORCH_CHECK(!ec, final_dir.string(), ": cannot commit checkpoint: ", ec.message());
    // keep_latest: drop older complete checkpoints; clear leftovers of interrupted discards.
    static const std::regex re("checkpoint_model_([0-9]{6,})");
    static const std::regex trash_re("\\.checkpoint_model_[0-9]{6,}\\.trash\\.[0-9]+");
    std::vector<std::string> dirs;
    for (const auto& e : fs::directory_iterator(root, ec)) {
      const std::string name = e.path().filename().string();
      if (!e.is_directory()) continue;
      if (std::regex_match(name, re)) dirs.push_back(e.path().string());
      if (std::regex_match(name, trash_re)) fs::remove_all(e.path(), ec);
    }
    if (c_.keep_latest > 0) {
      std::sort(dirs.begin(), dirs.end());
      for (size_t i = 0; i + c_.keep_latest < dirs.size(); ++i) discard(dirs[i]);
    }
  }
  dist_->world().barrier();
  return final_dir.string();
}

void Trainer::resume_from(const std::string& dir) {
  const auto st = json::parse(core::read_file((fs::path(dir) / "trainer_state.json").string()));
  const std::string stage = st.value("stage", c_.distillation_loss);
  TORCH_CHECK(stage == c_.distillation_loss, dir, ": checkpoint of stage '", stage,
              "', but the config runs '", c_.distillation_loss, "'");
  const int64_t step = st.at("step").get<int64_t>();
  const std::string sdir = (fs::path(dir) / "state_generator" / ("step-" + std::to_string(step))).string();
  load_sharded_checkpoint(sdir, {{"generator", gen_.sharded.get(), ema_.empty() ? nullptr : &ema_}},
                          gen_opt_.get());
  if (fake_.sharded)
    load_sharded_checkpoint(
        (fs::path(dir) / "state_critic" / ("step-" + std::to_string(step))).string(),
        {{"critic", fake_.sharded.get()}}, fake_opt_.get());
  const int world = st.value("world_size", 1);
  const std::string rng_file = (fs::path(dir) / "rng" / ("rank" + std::to_string(dist_->rank()) + ".bin")).string();
  if (world == dist_->world_size() && fs::exists(rng_file)) {
    const std::string bytes = core::read_file(rng_file);
    auto t = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
    std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
    rng_->set_state(t);
  } else {
    LOG_WARN("resume: saved with %d ranks, running %d: random streams reseeded", world,
             dist_->world_size());
    rng_ = at::make_generator<at::CPUGeneratorImpl>(seed_ + dist_->rank() + 1000003 * step);
  }
  step_ = step;
  LOG_INFO("resumed from %s at step %d", dir, step_);
}

void Trainer::write_samples() {
  if (opts_.num_samples <= 0) return;
  const int64_t n = std::min<int64_t>(opts_.num_samples, ds_->size());
  std::vector<std::string> prompts;
  for (int64_t i = 0; i < n; ++i) prompts.push_back(ds_->prompt(i));
  torch::NoGradGuard ng;
  auto cond = text_->encode(prompts).to(dev_, torch::kFloat32);
  std::vector<int64_t> shape = {n};
  shape.insert(shape.end(), frame_shape_.begin(), frame_shape_.end());
  auto g = at::make_generator<at::CPUGeneratorImpl>(12345);  // same noise at every checkpoint
  auto noise = randn(shape, g, dev_);
  gen_.sharded->gather_params();
  auto& w = *gen_.wrap;
  torch::Tensor lat;
  if (c_.distillation_loss == "diffusion" && !w.causal()) {
    // The teacher's 50-step sampler (CFG on the negative prompt when trained with dropout).
    const bool cfg = uncond1_.defined();
    const int64_t steps = opts_.teacher_sample_steps;
    lat = inference::sample_teacher(w, noise, cond, cfg ? uncond(n) : cond, steps,
                                    cfg ? c_.real_guidance_scale : 0.0, c_.timestep_shift)
              .trajectory.select(1, steps);
  } else if (w.causal()) {
    inference::CausalSamplerOptions so;
    so.denoising_step_list = inference::sampling_step_list(c_);
    so.num_frame_per_block = c_.num_frame_per_block;
    inference::CausalPipeline pipe(w, so);
    lat = pipe.generate(noise, cond, torch::Tensor(), g);
  } else {
    lat = inference::sample_bidirectional(w, noise, cond, inference::sampling_step_list(c_), g);
  }
  if (!dist_->is_main()) return;
  lat = lat.cpu();
  auto preview = opts_.preview ? opts_.preview : PreviewFn(default_preview);
  std::vector<torch::Tensor> frames;
  for (int64_t i = 0; i < n; ++i) frames.push_back(preview(lat[i]));
  auto all = torch::cat(frames, 0);  // rows: samples, columns: frames
  data::GridOptions go;
  go.num_cols = static_cast<int>(frame_shape_[0]);
  const std::string dir = c_.output_path + "/samples";
  core::make_dirs(dir);
  char name[64];
  std::snprintf(name, sizeof(name), "/step_%06lld.png", static_cast<long long>(step_));
  auto grid = data::make_grid(all, go);
  const std::string png = data::encode_png(grid);
  core::write_file_atomic(dir + name, png);
  metrics_->image("samples", step_, png, static_cast<int>(grid.size(1)),
                  static_cast<int>(grid.size(2)));
}

TrainResult Trainer::run() {
  setup();
  std::string resume = opts_.resume.empty() ? c_.resume : opts_.resume;
  if (resume == "auto") {
    resume = latest_complete_checkpoint(c_.checkpoint_root());
    if (resume.empty()) LOG_INFO("resume auto: no checkpoint under %s, starting fresh", c_.checkpoint_root());
  }
  int64_t data_position = 0;
  if (!resume.empty()) {
    TORCH_CHECK(fs::exists(fs::path(resume) / "trainer_state.json"), resume,
                ": not a complete checkpoint (no trainer_state.json)");
    resume_from(resume);
    data_position = json::parse(core::read_file((fs::path(resume) / "trainer_state.json").string()))
                        .value("data_position", step_);
  }
  data::LoaderOptions lo;
  lo.batch_size = c_.batch_size;
  lo.world = dist_->world_size();
  lo.rank = dist_->rank();
  lo.seed = seed_;
  lo.prefetch = c_.num_workers > 0 ? 2 : 0;
  lo.pin_memory = dev_.is_cuda();
  loader_ = std::make_unique<data::DataLoader>(ds_, lo, data_position);
  if (dist_->is_main()) {
    core::make_dirs(c_.output_path);
    core::save_config(c_, c_.output_path + "/config.yaml");
  }
  metrics_ = std::make_unique<MetricsLog>(c_.output_path + "/metrics.jsonl", dist_->is_main(), step_);

  TrainResult r;
  r.start_step = step_;
  const int64_t end = c_.max_iters > 0 ? c_.max_iters : INT64_MAX;
  const auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  double ema_dt = -1, step_seconds = 0;
  while (step_ < end) {
    auto m = train_step();
    ++step_;
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(now - last).count();
    last = now;
    ema_dt = ema_dt < 0 ? dt : 0.9 * ema_dt + 0.1 * dt;
    step_seconds += dt;
    m["step_time"] = dt;
    metrics_->append(step_, m);
    r.last_metrics = m;
    // The progress line every log_iters steps (and the first and last); metrics.jsonl and
    // TensorBoard get every step.
    const bool log_line = step_ % c_.log_iters == 0 || step_ == r.start_step + 1 || step_ == end;
    if (!opts_.quiet && dist_->is_main() && log_line) {
      std::string line;
      for (const auto& kv : m)
        if (kv.first != "step_time") line += absl::StrFormat(" %s %.4g", kv.first, kv.second);
      const double eta = end == INT64_MAX ? 0 : ema_dt * static_cast<double>(end - step_);
      LOG_INFO("step %d/%s%s | %.2f it/s | ETA %s", step_,
               end == INT64_MAX ? "inf" : std::to_string(end), line, 1.0 / ema_dt,
               end == INT64_MAX ? "-" : absl::StrFormat("%dm%02ds", (int64_t)eta / 60, (int64_t)eta % 60));
    }
    if (step_ % c_.save_every() == 0 || step_ == end) {
      last_ckpt_ = save_checkpoint();
      write_samples();
      if (dist_->is_main()) metrics_->write_plot(c_.output_path + "/loss_curves.png");
      LOG_INFO("checkpoint %s", last_ckpt_);
      last = std::chrono::steady_clock::now();
    }
  }
  r.end_step = step_;
  r.last_checkpoint = last_ckpt_;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Training steps only (checkpoints and sample sheets excluded).
  r.seconds_per_step = r.end_step > r.start_step ? step_seconds / (r.end_step - r.start_step) : 0;
  return r;
}

}  // namespace

TrainResult run_training(const core::Config& cfg, std::shared_ptr<core::DistContext> dist,
                         const TrainOptions& opts) {
  Trainer t(cfg, std::move(dist), opts);
  return t.run();
}

void export_checkpoint(const std::string& dir, const std::string& out, const std::string& format,
                       bool ema) {
  const std::string file = models::resolve_weight_file(dir);
  auto sd = core::load_weights(file);
  const std::string group = ema ? "generator_ema" : "generator";
  core::TensorMap plain;
  for (const auto& kv : sd)
    if (kv.first.rfind(group + ".model.", 0) == 0)
      plain[kv.first.substr(group.size() + 7)] = kv.second.contiguous();
  TORCH_CHECK(!plain.empty(), file, ": no '", group, "' weights in this checkpoint",
              ema ? " (trained without ema_weight?)" : "");
  if (format == "safetensors") {
    core::save_safetensors(out, plain);
    return;
  }
  TORCH_CHECK(format == "causvid", "--format: got '", format, "', want causvid | safetensors");
  auto pref = [&](const std::string& g) {
    core::TensorMap m;
    for (const auto& kv : sd)
      if (kv.first.rfind(g + ".", 0) == 0) m[kv.first.substr(g.size() + 1)] = kv.second.contiguous();
    return m;
  };
  std::vector<std::pair<std::string, c10::IValue>> items;
  core::TensorMap gen;
  for (const auto& kv : plain) gen["model." + kv.first] = kv.second;
  items.push_back({"generator", core::tensor_dict(gen)});
  auto critic = pref("critic");
  if (!critic.empty()) items.push_back({"critic", core::tensor_dict(critic)});
  core::save_torch_checkpoint(out, core::nested_dict(items));
}

}  // namespace causvid::trainer
