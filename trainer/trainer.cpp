// trainer/trainer.cpp: see trainer.h. The loop around a Stage (stage.h): data, text
// conditioning, step, log, checkpoint, sample sheets. It knows no stage by name.
#include "trainer/trainer.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include "core/fs.h"
#include "core/log.h"
#include "core/preempt.h"
#include "core/random.h"
#include "core/state_dict.h"
#include "core/tensor_io.h"
#include "data/datasets.h"
#include "data/image_io.h"
#include "data/text_from_config.h"
#include "models/wan/lora.h"
#include "models/wan/presets.h"
#include "trainer/checkpoint.h"
#include "trainer/lr_schedule.h"
#include "trainer/metrics.h"
#include "trainer/sharded_text_encoder.h"
#include "trainer/stage.h"

namespace causvid::trainer {
namespace {

using json = nlohmann::json;

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

std::string generator_state_bytes(at::Generator& g) {
  auto t = at::Tensor(g.get_state());
  return std::string(static_cast<const char*>(t.data_ptr()), t.nbytes());
}

// "step 12/400 critic_loss 0.1 ... | 2.1 it/s | ETA 3m05s"
std::string progress_line(int64_t step, int64_t end, const std::map<std::string, double>& m,
                          double sec_per_step) {
  std::string line;
  for (const auto& kv : m)
    if (kv.first != "step_time") line += absl::StrFormat(" %s %.4g", kv.first, kv.second);
  const bool open_ended = end == INT64_MAX;
  const double eta = open_ended ? 0 : sec_per_step * static_cast<double>(end - step);
  return absl::StrFormat("step %d/%s%s | %.2f it/s | ETA %s", step,
                         open_ended ? "inf" : std::to_string(end), line, 1.0 / sec_per_step,
                         open_ended ? "-"
                                    : absl::StrFormat("%dm%02ds", int64_t(eta) / 60,
                                                      int64_t(eta) % 60));
}

// Exits the process (code 1) when a stop request has lasted longer than grace_s: a
// preempted job must not hang past its notice. Runs until destroyed.
class StopWatchdog {
 public:
  explicit StopWatchdog(double grace_s) : grace_s_(grace_s) {
    if (grace_s_ > 0) thread_ = std::thread([this] { watch(); });
  }
  ~StopWatchdog() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void watch() {
    while (!done_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (core::stop_signal() != 0 && core::seconds_since_stop_request() > grace_s_) {
        LOG_ERROR("preemption: no checkpoint within preempt_grace_s %.0f s of signal %d; "
                  "exiting 1 (the last complete checkpoint is intact)",
                  grace_s_, core::stop_signal());
        std::_Exit(1);
      }
    }
  }
  double grace_s_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

class Trainer {
 public:
  Trainer(const core::Config& cfg, std::shared_ptr<core::DistContext> dist, const TrainOptions& o)
      : c_(cfg), dist_(std::move(dist)), opts_(o), updates_(cfg) {}

  TrainResult run();

 private:
  void setup();
  int64_t resume(const std::string& dir);  // returns the data position
  std::map<std::string, double> train_step();
  void save_checkpoint();
  void write_samples();
  bool stop_requested() const;  // collective: any rank got SIGTERM / SIGUSR1

  core::Config c_;
  std::shared_ptr<core::DistContext> dist_;
  TrainOptions opts_;
  UpdateRule updates_;
  int64_t seed_ = 0;
  at::Generator rng_;  // CPU generator: every random draw of training
  core::GeneratorSource draws_{rng_};  // the stage's view of rng_ (StageEnv::rng)
  std::unique_ptr<models::TextConditioner> text_;
  std::unique_ptr<StageEnv> env_;
  std::unique_ptr<Stage> stage_;
  std::shared_ptr<data::TrainDataset> ds_;
  std::unique_ptr<data::DataLoader> loader_;
  int64_t step_ = 0;
  std::unique_ptr<MetricsLog> metrics_;
  std::string last_ckpt_;
};

void Trainer::setup() {
  const auto& c = c_;
  const torch::Device dev = dist_->device();
  seed_ = core::resolve_seed(c.seed, dist_->world());
  rng_ = at::make_generator<at::CPUGeneratorImpl>(seed_ + dist_->rank());
  torch::manual_seed(seed_ + dist_->rank());
  TORCH_CHECK(c.image_or_video_shape.size() == 5, c.source,
              ": key 'image_or_video_shape': want [B, F, C, H, W]");
  std::vector<int64_t> frame_shape(c.image_or_video_shape.begin() + 1,
                                   c.image_or_video_shape.end());
  const auto d = models::wan_config(c);
  TORCH_CHECK(frame_shape[1] == d.in_dim, c.source, ": image_or_video_shape has ", frame_shape[1],
              " channels but the model (", c.model_preset, ") takes ", d.in_dim);
  if (!c.generator_ckpt.empty())
    TORCH_CHECK(std::filesystem::exists(c.generator_ckpt), c.source, ": key 'generator_ckpt': ",
                c.generator_ckpt, ": no such file or directory");

  // Before any data or model work: a total_batch_size the ranks cannot split fails here.
  const int accumulation = c.accumulation_steps(dist_->world_size());
  if (accumulation > 1)
    LOG_INFO("train: %d micro-batches of %d per update on each of %d ranks (total_batch_size %d)",
             accumulation, c.batch_size, dist_->world_size(), c.total_batch_size);

  // Text conditioning (frozen; sharded like CausVid's FSDP-wrapped umT5 when it runs live).
  text_ = std::make_unique<ShardedTextEncoder>(data::text_conditioner_from_config(c, dev), c,
                                               dist_);
  TORCH_CHECK(text_->dim() == d.text_dim, "text encoder dim ", text_->dim(), " != model text_dim ",
              d.text_dim);
  env_.reset(new StageEnv{c_, dist_, dev, static_cast<uint64_t>(seed_), draws_, *text_, frame_shape,
                          updates_, opts_.teacher_sample_steps});
  stage_ = make_stage(c.distillation_loss, *env_);

  // Data.
  ds_ = data::open_train_dataset(c.data_path, frame_shape, c.max_pair);
  TORCH_CHECK(!stage_->needs_latents() || ds_->has_latents(), c.source, ": key 'data_path': ",
              c.data_path, " holds prompts only, but distillation_loss ", c.distillation_loss,
              (c.distillation_loss == "dmd" ? " with backward_simulation false" : ""),
              " needs latents (an LMDB)");
  stage_->check_data(*ds_);
  LOG_INFO("train: stage %s, generator %s (%s), data %s, world %d, seed %d", c.distillation_loss,
           stage_->generator().wrap().causal() ? "causal" : "bidirectional",
           c.generator_ckpt.empty() ? c.dit_file() : c.generator_ckpt, ds_->describe(),
           dist_->world_size(), seed_);
  if (!updates_.schedule().is_constant()) LOG_INFO("train: %s", updates_.schedule().describe());
}

int64_t Trainer::resume(const std::string& dir) {
  const json st = read_checkpoint_state(dir);
  const std::string stage = st.value("stage", c_.distillation_loss);
  TORCH_CHECK(stage == c_.distillation_loss, dir, ": checkpoint of stage '", stage,
              "', but the config runs '", c_.distillation_loss, "'");
  load_checkpoint(dir, st, stage_->checkpoint_states());
  step_ = st.at("step").get<int64_t>();
  const int world = st.value("world_size", 1);
  const std::string bytes = read_rng_state(dir, dist_->rank());
  if (world == dist_->world_size() && !bytes.empty()) {
    auto t = torch::empty({static_cast<int64_t>(bytes.size())}, torch::kUInt8);
    std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
    rng_.set_state(t);
  } else {
    LOG_WARN("resume: saved with %d ranks, running %d: random streams reseeded", world,
             dist_->world_size());
    rng_.set_current_seed(seed_ + dist_->rank() + 1000003 * step_);
  }
  LOG_INFO("resumed from %s at step %d", dir, step_);
  return st.value("data_position", step_);
}

std::map<std::string, double> Trainer::train_step() {
  const torch::Device dev = env_->device;
  // One update = accumulation_steps micro-batches (total_batch_size over all ranks).
  const int n = c_.accumulation_steps(dist_->world_size());
  std::vector<data::Batch> batches(n);
  std::vector<torch::Tensor> conds(n);
  for (int i = 0; i < n; ++i) {
    batches[i] = loader_->next();
    {
      torch::NoGradGuard ng;
      conds[i] = text_->encode(batches[i].prompts).to(dev, torch::kFloat32);
    }
    // The loader pins batches on CUDA runs (LoaderOptions::pin_memory), so this copy does
    // not block the host.
    auto& lat = batches[i].latents;
    if (lat.defined()) lat = lat.to(dev, /*non_blocking=*/dev.is_cuda());
  }
  StepInput in{batches[0], conds[0], step_};
  for (int i = 1; i < n; ++i) in.more.push_back({&batches[i], conds[i]});
  auto m = stage_->step(in);
  if (updates_.skipped() > 0) m["skipped_updates"] = static_cast<double>(updates_.skipped());
  return m;
}

void Trainer::save_checkpoint() {
  CheckpointContents cc;
  cc.models = stage_->checkpoint_states();
  cc.state = {{"data_position", loader_->position()},
              {"seed", seed_},
              {"stage", c_.distillation_loss}};
  cc.rng_state = generator_state_bytes(rng_);
  // model.pt (CausVid's layout): gathered one unit at a time and kept on rank 0 only, so
  // no other rank ever holds a full copy of any model.
  std::vector<std::pair<std::string, std::map<std::string, torch::Tensor>>> groups;
  for (auto& ms : cc.models) groups.push_back({ms.name, ms.module->full_state_dict(true)});
  for (auto& ms : cc.models)
    if (ms.ema) groups.push_back({ms.name + "_ema", ms.ema->full_state_dict_rank0()});
  cc.write_rank0 = [&](const std::string& dir) {
    std::vector<std::pair<std::string, c10::IValue>> items;
    for (const auto& [name, sd] : groups) {
      core::TensorMap prefixed;
      for (const auto& kv : sd) prefixed["model." + kv.first] = kv.second;
      items.push_back({name, core::tensor_dict(prefixed)});
    }
    core::save_torch_checkpoint(dir + "/model.pt", core::nested_dict(items));
    core::save_config(c_, dir + "/config.yaml");
    // LoRA runs: the adapters (and their EMA) as ComfyUI LoRA files beside model.pt, for
    // `generate --lora` / `causvid lora merge` on the base model.
    for (const auto& [name, sd] : groups)
      for (const auto& ms : cc.models)
        for (auto& [role, tm] : stage_->models())
          if (tm->lora() && &tm->trained() == ms.module &&
              (name == ms.name || name == ms.name + "_ema"))
            models::save_lora(dir + "/" + name + ".safetensors", tm->lora()->to_file(&sd), "comfyui");
  };
  last_ckpt_ = trainer::save_checkpoint(c_.checkpoint_root(), step_, cc, c_.keep_latest);
  updates_.set_last_checkpoint(last_ckpt_);
}

void Trainer::write_samples() {
  if (opts_.num_samples <= 0) return;
  const int64_t n = std::min<int64_t>(opts_.num_samples, ds_->size());
  std::vector<std::string> prompts;
  for (int64_t i = 0; i < n; ++i) prompts.push_back(ds_->prompt(i));
  torch::NoGradGuard ng;
  auto cond = text_->encode(prompts).to(env_->device, torch::kFloat32);
  auto g = at::make_generator<at::CPUGeneratorImpl>(12345);  // same noise at every checkpoint
  auto noise = core::randn(env_->batch_shape(n), g,
                           torch::TensorOptions(torch::kFloat32).device(env_->device));
  auto lat = stage_->sample(noise, cond, g);
  if (!dist_->is_main()) return;
  lat = lat.cpu();
  auto preview = opts_.preview ? opts_.preview : PreviewFn(default_preview);
  std::vector<torch::Tensor> frames;
  for (int64_t i = 0; i < n; ++i) frames.push_back(preview(lat[i]));
  data::GridOptions go;
  go.num_cols = static_cast<int>(env_->frame_shape[0]);  // rows: samples, columns: frames
  const std::string dir = c_.output_path + "/samples";
  core::make_dirs(dir);
  auto grid = data::make_grid(torch::cat(frames, 0), go);
  const std::string png = data::encode_png(grid);
  core::write_file_atomic(dir + absl::StrFormat("/step_%06d.png", step_), png);
  metrics_->image("samples", step_, png, static_cast<int>(grid.size(1)),
                  static_cast<int>(grid.size(2)));
}

bool Trainer::stop_requested() const {
  return dist_->world().sum({core::stop_signal() != 0 ? 1 : 0})[0] > 0;
}

TrainResult Trainer::run() {
  if (opts_.handle_preemption) core::install_stop_signals();
  std::unique_ptr<StopWatchdog> watchdog;
  if (opts_.handle_preemption) watchdog = std::make_unique<StopWatchdog>(c_.preempt_grace_s);
  setup();
  const std::string from = resolve_resume(opts_.resume.empty() ? c_.resume : opts_.resume,
                                          c_.checkpoint_root(), *dist_);
  const int64_t data_position = from.empty() ? 0 : resume(from);
  data::LoaderOptions lo;
  lo.batch_size = c_.batch_size;
  lo.world = dist_->world_size();
  lo.rank = dist_->rank();
  lo.seed = seed_;
  lo.prefetch = c_.num_workers > 0 ? 2 : 0;
  lo.pin_memory = env_->device.is_cuda();
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
    if (!updates_.schedule().is_constant()) m["lr"] = c_.lr * updates_.schedule().factor(step_);
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
    if (!opts_.quiet && dist_->is_main() && log_line)
      LOG_INFO("%s", progress_line(step_, end, m, ema_dt));
    const bool stop = opts_.handle_preemption && stop_requested();
    if (step_ % c_.save_every() == 0 || step_ == end || stop) {
      save_checkpoint();
      if (!stop) write_samples();
      if (dist_->is_main()) metrics_->write_plot(c_.output_path + "/loss_curves.png");
      LOG_INFO("checkpoint %s", last_ckpt_);
      last = std::chrono::steady_clock::now();
    }
    if (stop) {
      r.preempted = true;
      r.stop_signal = core::stop_signal();
      LOG_WARN("preemption: signal %d after step %d: checkpoint %s written; stopping (resume "
               "with --resume auto)", r.stop_signal, step_, last_ckpt_);
      break;
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

}  // namespace causvid::trainer
