// data/ode_pairs_main.cpp: `causvid ode-pairs` (CausVid's causvid/models/wan/
// generate_ode_pairs.py): teacher ODE trajectories per prompt -> shards for
// `causvid lmdb build`. Thin: parse, build the teacher and the text conditioning, run.
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "core/args.h"
#include "core/config.h"
#include "core/dist.h"
#include "core/log.h"
#include "core/runtime.h"
#include "inference/ode_pairs.h"
#include "data/prompt_cache.h"
#include "models/wan/wan_config.h"
#include "models/wan/wan_loader.h"

namespace causvid::cli {
namespace {
std::vector<int64_t> parse_int_list(const std::string& flag, const std::string& v) {
  std::vector<int64_t> out;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(core::ArgParser::to_int(flag, item));
  return out;
}
}  // namespace

int ode_pairs_main(int argc, char** argv) {
  core::ArgParser p("causvid ode-pairs",
                    "Sample each prompt with the bidirectional teacher (N-step Euler grid, "
                    "shift 8, CFG on the config's negative_prompt) and store the trajectory "
                    "points at --keep as rows [S, F, C, H, W] in shards "
                    "(<out>/ode_pairs_<k>.safetensors) for `causvid lmdb build`. Distributed "
                    "over ranks by shard; noise of prompt i is seeded seed + i; existing "
                    "shards are skipped (resumable).");
  auto& config = p.flag("--config", "",
                        "run config (model size, image_or_video_shape, "
                        "negative_prompt, text encoder / prompt_cache)");
  auto& sets = p.multi("--set", "config override key=value (repeatable)");
  auto& prompts_path = p.flag("--prompts", "", "prompt file: one UTF-8 prompt per line");
  auto& out = p.flag("--out", "", "output folder for the shards");
  auto& teacher_path = p.flag("--teacher", "",
                              "teacher weights (plain WanModel keys, CausVid model.pt or a "
                              "checkpoint dir; default: the config's dit_path)");
  auto& which = p.flag("--which", "generator", "group inside a model.pt / checkpoint");
  auto& prompt_cache = p.flag("--prompt-cache", "",
                              "prompt-embedding cache (default: the config's prompt_cache, "
                              "else its text encoder)");
  auto& steps = p.flag("--steps", "50", "teacher sampling steps");
  auto& keep = p.flag("--keep", "0,36,44,-1", "trajectory indices kept (of steps + 1; -1 last)");
  auto& guidance = p.flag("--guidance", "6.0", "classifier-free guidance scale");
  auto& shift = p.flag("--shift", "8.0", "sampling grid shift");
  auto& seed = p.flag("--seed", "0", "base seed (prompt i uses seed + i)");
  auto& shard_size = p.flag("--shard-size", "16", "prompts per shard");
  auto& dtype = p.flag("--dtype", "fp32", "stored dtype: fp32, fp16 or bf16");
  auto& compute = p.flag("--compute-dtype", "fp32", "teacher weights' dtype: fp32 or bf16");
  auto& device = p.flag("--device", "", "auto, cpu, cuda (= cuda:LOCAL_RANK) or cuda:N (default: the config's device)");
  if (!p.parse(argc, argv)) return p.exit_code();
  TORCH_CHECK(!config.empty(), "--config: required");
  TORCH_CHECK(!prompts_path.empty(), "--prompts: required");
  TORCH_CHECK(!out.empty(), "--out: required");
  auto c = core::load_config(config, sets);
  data::OdePairOptions o;
  o.num_steps = core::ArgParser::to_int("--steps", steps);
  o.keep = parse_int_list("--keep", keep);
  data::resolve_keep_indices(o.keep, o.num_steps);  // check before loading anything
  o.guidance_scale = core::ArgParser::to_double("--guidance", guidance);
  o.shift = core::ArgParser::to_double("--shift", shift);
  o.seed = core::ArgParser::to_int("--seed", seed);
  o.shard_size = core::ArgParser::to_int("--shard-size", shard_size);
  o.store_dtype = data::parse_embed_dtype("--dtype", dtype);
  o.negative_prompt = c.negative_prompt;
  o.shape_FCHW.assign(c.image_or_video_shape.begin() + 1, c.image_or_video_shape.end());

  auto prompts = data::read_prompt_file(prompts_path);
  core::DistOptions dopt;
  dopt.device = device.empty() ? c.device : device;  // chosen once, before the process group
  auto dist = core::DistContext::init_from_env(dopt);
  core::set_log_rank(dist->rank());
  o.device = dist->device();

  auto dims = c.model_dims();
  TORCH_CHECK(o.shape_FCHW[1] == dims.in_dim, "image_or_video_shape: ", o.shape_FCHW[1],
              " latent channels, want the model's in_dim ", dims.in_dim);
  models::WanModel net(models::WanConfig::from_dims(dims));
  const std::string tp = teacher_path.empty() ? c.dit_file() : teacher_path;
  models::load_wan_weights(net, tp, which);
  net->to(o.device, core::parse_dtype(compute, "--compute-dtype"));
  net->eval();
  models::WanDiffusionWrapper teacher(net, /*causal=*/false, c.num_frame_per_block);

  data::TextConditionerOptions to;
  to.cache_dir = prompt_cache.empty() ? c.prompt_cache : prompt_cache;
  if (to.cache_dir.empty()) {
    to.encoder_path = c.text_encoder_file();
    to.tokenizer_path = c.tokenizer_dir();
  }
  to.text_len = dims.text_len;
  to.device = o.device;
  auto text = data::make_text_conditioner(to);
  TORCH_CHECK(text->dim() == dims.text_dim, "text embeddings: dim ", text->dim(),
              ", want the model's text_dim ", dims.text_dim);

  LOG_INFO("%d prompts, teacher %s, %d steps, guidance %.2f, keep %s, rank %d/%d", prompts.size(),
           tp, o.num_steps, o.guidance_scale, keep, dist->rank(), dist->world_size());
  auto st =
      data::generate_ode_pairs(teacher, *text, prompts, out, o, dist->rank(), dist->world_size());
  LOG_INFO("rank %d: %d prompts, %d shards written, %d existing, %.2f s (%.3f s/prompt)",
           dist->rank(), st.done, st.shards_written, st.shards_existing, st.seconds,
           st.seconds / std::max<int64_t>(st.done, 1));
  const auto counts = dist->world().sum({st.done});
  if (dist->is_main())
    std::printf("ode pairs for %ld prompts (of %zu) -> %s\n",
                static_cast<long>(counts[0]), prompts.size(), out.c_str());
  return 0;
}

}  // namespace causvid::cli
