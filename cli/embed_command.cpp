// cli/embed_command.cpp: the commands that run the teacher side once, before training.
//   causvid embed-prompts  umT5 prompt embeddings -> an LMDB prompt cache (data/prompt_cache.h),
//                          so training and inference need not hold the 5.7B-parameter encoder
//   causvid ode-pairs      CausVid's causvid/models/wan/generate_ode_pairs.py: teacher ODE
//                          trajectories per prompt -> shards for `causvid lmdb build`
// Thin: parse, build the encoder / teacher and the text conditioning, run.
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "core/config.h"
#include "core/dist.h"
#include "core/failures.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/latent_tools.h"
#include "data/prompt_cache.h"
#include "data/text_from_config.h"
#include "inference/ode_pairs.h"
#include "inference/step_list.h"
#include "models/t5/umt5.h"
#include "models/wan/presets.h"
#include "models/wan/wan_config.h"
#include "models/wan/wan_loader.h"

namespace causvid::cli {
namespace {

struct EmbedArgs {
  std::string prompts, out, encoder, tokenizer, preset = "xxl", dtype = "bf16";
  std::string compute_dtype = "fp32", device = "cpu";
  int64_t text_len = 512, batch_size = 8, seed = 0;
  bool overwrite = false;
};

int run_embed_prompts(const EmbedArgs& a) {
  const auto store_dtype = data::parse_embed_dtype("--dtype", a.dtype);
  const auto compute_dtype = data::parse_embed_dtype("--compute-dtype", a.compute_dtype);
  const int64_t seq = a.text_len;
  TORCH_CHECK(seq >= 1, "--text-len: got ", seq, ", want >= 1");
  const auto dev = core::resolve_device(a.device);

  auto prompts = data::read_prompt_file(a.prompts);
  LOG_INFO("%d prompts from %s", prompts.size(), a.prompts);

  std::shared_ptr<models::UMT5Tokenizer> tok;
  if (!a.tokenizer.empty()) {
    tok = std::make_shared<models::UMT5Tokenizer>(a.tokenizer, seq);
  } else {
    TORCH_CHECK(a.preset == "tiny", "--tokenizer: required with --preset xxl (the google/umt5-xxl "
                                  "folder or its spiece.model)");
    tok = std::shared_ptr<models::UMT5Tokenizer>(models::UMT5Tokenizer::bytes(seq));
  }
  models::UMT5Encoder enc{nullptr};
  std::string desc;
  if (!a.encoder.empty()) {
    enc = models::load_umt5_encoder(models::read_umt5_weights(a.encoder), a.encoder,
                                    compute_dtype, dev);
    desc = a.encoder;
  } else {
    TORCH_CHECK(a.preset == "tiny", "--encoder: required with --preset xxl");
    torch::manual_seed(a.seed);
    auto cfg = models::UMT5Config::tiny(tok->vocab_size());
    enc = models::UMT5Encoder(cfg);
    enc->to(dev, compute_dtype);
    enc->eval();
    desc = "tiny random " + cfg.str() + " seed " + std::to_string(a.seed);
  }
  models::UMT5TextEncoder text_encoder(enc, tok, torch::kFloat32);

  c10::InferenceMode guard;
  auto t0 = std::chrono::steady_clock::now();
  data::embed_prompts(text_encoder, prompts, a.out, store_dtype, a.batch_size, a.overwrite, desc,
                      [&](int64_t done, int64_t total) {
                        double s = std::chrono::duration<double>(
                                       std::chrono::steady_clock::now() - t0).count();
                        LOG_INFO("embedded %d/%d prompts, %.2f s/prompt", done, total,
                                 s / std::max<int64_t>(done, 1));
                      });
  std::printf("%s\n", a.out.c_str());
  return 0;
}

struct OdePairsArgs {
  ConfigArgs config;
  std::string prompts, out, teacher, which = "generator", prompt_cache;
  std::string dtype = "fp32", compute_dtype = "fp32", device;
  int64_t steps = 50, seed = 0, shard_size = 16;
  std::vector<int64_t> keep;  // empty: the config's denoising_step_list on the grid
  double guidance = 6.0;
  std::optional<double> shift;  // default: the config's scheduler_shift
  bool causal_teacher = false;  // a causal (teacher_forcing) teacher: KV-cache sampler
};

std::string keep_str(const std::vector<int64_t>& keep) {
  std::string s;
  for (auto k : keep) s += (s.empty() ? "" : ",") + std::to_string(k);
  return s;
}

// The config's text conditioner (text_len, text_dim, prompt_cache or encoder), with
// --prompt-cache replacing the config's cache.
auto make_text(const OdePairsArgs& a, core::Config c, torch::Device device) {
  if (!a.prompt_cache.empty()) c.prompt_cache = a.prompt_cache;
  auto text = data::text_conditioner_from_config(c, device);
  TORCH_CHECK(text->dim() == models::wan_config(c).text_dim, "text embeddings: dim ", text->dim(),
              ", want the model's text_dim ", models::wan_config(c).text_dim);
  return text;
}

int run_ode_pairs(const OdePairsArgs& a) {
  auto c = core::load_config(a.config.path, a.config.sets);
  inference::OdePairOptions o;
  o.num_steps = a.steps;
  o.guidance_scale = a.guidance;
  // A causal teacher (teacher_forcing stage) samples on its own grid: the generator's.
  o.shift = a.shift.value_or(a.causal_teacher ? c.generator_scheduler_shift() : c.scheduler_shift);
  // The points that carry the config's steps on this grid; an explicit --keep that labels
  // other noise levels with those steps is allowed (CausVid's data) but named.
  double err = 0;
  const auto matched = inference::keep_for_step_list(inference::training_step_list(c), o.num_steps,
                                                     o.shift, &err);
  o.keep = a.keep.empty() ? matched : a.keep;
  const auto kept = inference::resolve_keep_indices(o.keep, o.num_steps);  // before loading
  if (kept != inference::resolve_keep_indices(matched, o.num_steps))
    LOG_WARN("ode-pairs: --keep %s stores other trajectory points than %s, the ones nearest to "
             "the config's denoising_step_list on the %d-step grid of shift %.2f: the causal "
             "ODE stage will label them with timesteps of other noise levels",
             keep_str(o.keep), keep_str(matched), o.num_steps, o.shift);
  else if (err > 10)
    LOG_WARN("ode-pairs: the %d-step grid of shift %.2f is up to %.1f timesteps away from the "
             "config's denoising_step_list (use more --steps or another --shift)",
             o.num_steps, o.shift, err);
  o.seed = a.seed;
  o.shard_size = a.shard_size;
  o.store_dtype = data::parse_embed_dtype("--dtype", a.dtype);
  o.negative_prompt = c.negative_prompt;
  o.shape_FCHW.assign(c.image_or_video_shape.begin() + 1, c.image_or_video_shape.end());

  auto prompts = data::read_prompt_file(a.prompts);
  core::DistOptions dopt;
  dopt.device = a.device.empty() ? c.device : a.device;  // chosen once, before the process group
  auto dist = core::DistContext::init_from_env(dopt);
  core::set_log_rank(dist->rank());
  o.device = dist->device();

  auto dims = models::wan_config(c);
  TORCH_CHECK(o.shape_FCHW[1] == dims.in_dim, "image_or_video_shape: ", o.shape_FCHW[1],
              " latent channels, want the model's in_dim ", dims.in_dim);
  models::WanModel net(dims);
  const std::string tp = a.teacher.empty() ? c.dit_file() : a.teacher;
  models::load_wan_weights(net, tp, a.which);
  net->to(o.device, core::parse_dtype(a.compute_dtype, "--compute-dtype"));
  net->eval();
  models::WanDiffusionWrapper teacher(net, a.causal_teacher, c.num_frame_per_block,
                                      a.causal_teacher ? c.generator_scheduler_shift()
                                                       : c.scheduler_shift);

  auto text = make_text(a, c, o.device);
  LOG_INFO("%d prompts, teacher %s, %d steps, guidance %.2f, keep %s, rank %d/%d", prompts.size(),
           tp, o.num_steps, o.guidance_scale, keep_str(o.keep), dist->rank(), dist->world_size());
  auto st =
      inference::generate_ode_pairs(teacher, *text, prompts, a.out, o, dist->rank(), dist->world_size());
  LOG_INFO("rank %d: %d prompts, %d shards written, %d existing, %.2f s (%.3f s/prompt)",
           dist->rank(), st.done, st.shards_written, st.shards_existing, st.seconds,
           st.seconds / std::max<int64_t>(st.done, 1));
  const auto counts = dist->world().sum({st.done, st.failed});
  const auto all = core::report_failures(dist->world(), a.out, st.failures, "ode-pairs");
  if (dist->is_main())
    std::printf("ode pairs for %ld prompts, failed %ld (of %zu) -> %s\n",
                static_cast<long>(counts[0]), static_cast<long>(counts[1]), prompts.size(),
                a.out.c_str());
  return all.empty() ? 0 : 1;
}

void add_embed_prompts_command(Commands& cmds) {
  auto e = std::make_shared<EmbedArgs>();
  CLI::App* app = cmds.add("embed-prompts",
                           "Encode every line of a prompt file with umT5 and store the embeddings "
                           "(valid rows only) in an LMDB prompt cache.",
                           [e] { return run_embed_prompts(*e); });
  app->add_option("--prompts", e->prompts, "prompt file: one UTF-8 prompt per line")->required();
  app->add_option("--out", e->out, "output cache directory (LMDB), written atomically")
      ->required();
  app->add_option("--encoder", e->encoder,
                  "umT5 encoder weights (.safetensors; models_t5_umt5-xxl-enc-bf16 keys)");
  app->add_option("--tokenizer", e->tokenizer,
                  "sentencepiece model or google/umt5-xxl folder (spiece.model)");
  app->add_option("--preset", e->preset,
                  "xxl (needs --encoder, --tokenizer) or tiny (random tiny encoder, for tests; "
                  "byte tokenizer unless --tokenizer)")
      ->check(CLI::IsMember({"xxl", "tiny"}));
  add_dtype_option(*app, "--dtype", e->dtype, "stored dtype: bf16, fp16 or fp32");
  add_dtype_option(*app, "--compute-dtype", e->compute_dtype, "encoder dtype: fp32 or bf16");
  add_device_option(*app, e->device, "auto, cpu, cuda or cuda:N");
  app->add_option("--text-len", e->text_len, "token positions per prompt (Wan: 512)")
      ->check(CLI::PositiveNumber);
  app->add_option("--batch-size", e->batch_size, "prompts per encoder call");
  add_seed_option(*app, e->seed, "weight seed of the tiny preset");
  add_overwrite_flag(*app, e->overwrite);
}

}  // namespace

void add_teacher_data_commands(Commands& cmds) {
  add_embed_prompts_command(cmds);
  auto o = std::make_shared<OdePairsArgs>();
  CLI::App* app = cmds.add(
      "ode-pairs",
      "Sample each prompt with the bidirectional teacher (N-step Euler grid, scheduler_shift (8 in CausVid), CFG on "
      "the config's negative_prompt) and store the trajectory points at --keep as rows [S, F, "
      "C, H, W] in shards (<out>/ode_pairs_<k>.safetensors) for `causvid lmdb build`. "
      "Distributed over ranks by shard; noise of prompt i is seeded seed + i; existing shards "
      "are skipped (resumable).",
      [o] { return run_ode_pairs(*o); });
  add_config_options(*app, o->config,
                     "run config (model size, image_or_video_shape, negative_prompt, text "
                     "encoder / prompt_cache)",
                     "config override key=value (repeatable)")
      ->required();
  app->add_option("--prompts", o->prompts, "prompt file: one UTF-8 prompt per line")->required();
  app->add_option("--out", o->out, "output folder for the shards")->required();
  app->add_option("--teacher", o->teacher,
                  "teacher weights (plain WanModel keys, CausVid model.pt or a checkpoint dir; "
                  "default: the config's dit_path)");
  app->add_option("--which", o->which, "group inside a model.pt / checkpoint");
  app->add_option("--prompt-cache", o->prompt_cache,
                  "prompt-embedding cache (default: the config's prompt_cache, else its text "
                  "encoder)");
  app->add_option("--steps", o->steps, "teacher sampling steps");
  app->add_flag("--causal-teacher", o->causal_teacher,
                "the teacher is causal (a teacher_forcing checkpoint, Causal Forcing): sample "
                "block by block with its KV cache, num_frame_per_block from the config, grid "
                "shift model_kwargs.timestep_shift");
  app->add_option("--keep", o->keep,
                  "trajectory indices kept (of steps + 1; -1 last); default: the points nearest "
                  "to the config's denoising_step_list on the grid (CausVid's 0,36,44,-1 for "
                  "[1000, 757, 522] at 50 steps, shift 8)")
      ->delimiter(',')
      ->allow_extra_args(false);
  app->add_option("--guidance", o->guidance, "classifier-free guidance scale");
  add_optional(*app, "--shift", o->shift,
               "sampling grid shift (default: the config's scheduler_shift, 8 as CausVid)");
  add_seed_option(*app, o->seed, "base seed (prompt i uses seed + i)");
  app->add_option("--shard-size", o->shard_size, "prompts per shard");
  add_dtype_option(*app, "--dtype", o->dtype, "stored dtype: fp32, fp16 or bf16");
  add_dtype_option(*app, "--compute-dtype", o->compute_dtype, "teacher weights' dtype: fp32 or bf16");
  add_device_option(*app, o->device);
}

}  // namespace causvid::cli
