// trainer/stage.cpp: see stage.h.
#include "trainer/stage.h"

#include <mutex>

#include "core/random.h"
#include "inference/causal_pipeline.h"
#include "inference/step_list.h"

namespace causvid::trainer {

torch::Tensor StageEnv::uncond(int64_t B) {
  if (!uncond1_cache.defined()) {
    torch::NoGradGuard ng;
    uncond1_cache = text.encode({cfg.negative_prompt}).to(device, torch::kFloat32);
  }
  return uncond1_cache.expand({B, -1, -1}).contiguous();
}

torch::Tensor StageEnv::randn(at::IntArrayRef shape) {
  return rng.randn(shape, torch::TensorOptions(torch::kFloat32).device(device));
}

std::vector<int64_t> StageEnv::batch_shape(int64_t B) const {
  std::vector<int64_t> s = {B};
  s.insert(s.end(), frame_shape.begin(), frame_shape.end());
  return s;
}

std::unique_ptr<TrainModel> build_generator(StageEnv& env) {
  const auto& c = env.cfg;
  auto g = std::make_unique<TrainModel>(
      c,
      TrainModelSpec{"generator", c.generator_model() == "causal_wan",
                     c.generator_ckpt.empty() ? c.dit_file() : c.generator_ckpt, env.seed,
                     c.generator_trainable(), std::nullopt, c.generator_scheduler_shift()},
      env.dist);
  if (g->trainable()) {
    g->add_optimizer(adamw_from_config(c));
    if (c.ema_weight > 0) g->add_ema(c.ema_weight, c.ema_start_step);
  }
  return g;
}

double Stage::accumulate(const StepInput& in, const MicroLoss& loss_of,
                         std::map<std::string, double>& metrics) {
  const size_t n = in.size();
  double total = 0;
  std::map<std::string, double> sum;
  for (size_t i = 0; i < n; ++i) {
    std::map<std::string, double> m;
    auto loss = loss_of(in.micro(i), m);
    (n == 1 ? loss : loss / static_cast<double>(n)).backward();
    total += loss.item<double>();
    for (const auto& kv : m) sum[kv.first] += kv.second;
  }
  for (const auto& kv : sum) metrics[kv.first] = kv.second / n;
  return total / n;
}

std::map<std::string, double> GeneratorStage::generator_only_step(
    const StepInput& in, const std::function<torch::Tensor(const MicroBatch&)>& loss_of) {
  auto scope = gen_->sharded().gathered();
  std::map<std::string, double> m;
  m["generator_loss"] = accumulate(
      in, [&](const MicroBatch& mb, std::map<std::string, double>&) { return loss_of(mb); }, m);
  m["generator_grad_norm"] = update_generator(in.step);
  return m;
}

double GeneratorStage::update_generator(int64_t step) {
  const double norm = env_.updates.apply(*gen_, step, env_.cfg.generator_grad_clip());
  if (gen_->ema()) gen_->ema()->update(step);
  return norm;
}

torch::Tensor Stage::sample(const torch::Tensor& noise, const torch::Tensor& cond,
                            at::Generator& g) {
  auto scope = generator().sharded().gathered();
  auto& w = generator().wrap();
  if (w.causal()) {
    inference::CausalSamplerOptions so;
    so.denoising_step_list = inference::sampling_step_list(env_.cfg);
    so.num_frame_per_block = env_.cfg.num_frame_per_block;
    inference::CausalPipeline pipe(w, so);
    return pipe.generate(noise, cond, torch::Tensor(), g);
  }
  return inference::sample_bidirectional(w, noise, cond, inference::sampling_step_list(env_.cfg), g);
}

namespace {
std::mutex& registry_mutex() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, StageFactory>& registry() {
  static std::map<std::string, StageFactory> r;
  return r;
}
void ensure_builtins() {
  static std::once_flag once;
  std::call_once(once, register_builtin_stages);
}
}  // namespace

void register_stage(const std::string& name, StageFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  TORCH_CHECK(!name.empty() && factory, "register_stage: empty name or factory");
  TORCH_CHECK(registry().emplace(name, std::move(factory)).second, "register_stage: a stage '",
              name, "' is already registered");
}

std::vector<std::string> registered_stages() {
  ensure_builtins();
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> out;
  for (const auto& kv : registry()) out.push_back(kv.first);
  return out;
}

std::unique_ptr<Stage> make_stage(const std::string& name, StageEnv& env) {
  ensure_builtins();
  StageFactory f;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(name);
    if (it != registry().end()) f = it->second;
  }
  if (!f) {
    std::string names;
    for (const auto& n : registered_stages()) names += (names.empty() ? "" : " | ") + n;
    TORCH_CHECK(false, env.cfg.source, ": key 'distillation_loss': no stage '", name,
                "', want one of ", names);
  }
  return f(env);
}

}  // namespace causvid::trainer
