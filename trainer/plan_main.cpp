// trainer/plan_main.cpp: `causvid plan`: per-rank bytes of parameters, gradients and optimizer
// state of the generator, real score and fake score under a config's sharding strategy and
// mixed precision for a given world size (the layout of trainer/fsdp.h; no model is built).
// CausVid's DMD run holds three Wan DiTs: generator and fake score trainable (AdamW), real
// score frozen; the ODE run only the generator.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "core/args.h"
#include "core/config.h"
#include "models/wan/wan_config.h"
#include "trainer/fsdp.h"

namespace causvid::cli {
namespace {

std::string gib(int64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", double(b) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace

int plan_main(int argc, char** argv) {
  core::ArgParser p("causvid plan",
                    "Per-rank memory (GiB) of params / grads / optimizer state of generator, "
                    "real score and fake score under the config's sharding_strategy and "
                    "mixed_precision at a world size.");
  auto& file = p.flag("--config", "", "config YAML (e.g. configs/wan_causal_dmd.yaml)");
  auto& sets = p.multi("--set", "override one key, key=value");
  auto& ws = p.flag("--world-size", "8", "number of ranks");
  auto& npn = p.flag("--nproc-per-node", "8", "ranks per node (hybrid strategies shard within)");
  if (!p.parse(argc, argv)) return p.exit_code();
  if (file.empty()) {
    std::fprintf(stderr, "causvid plan: --config FILE is required (see --help)\n");
    return 2;
  }
  core::Config c = core::read_config(file);
  core::apply_overrides(c, sets);
  c.validate();
  const int W = std::stoi(ws);
  int L = std::min(W, std::stoi(npn));
  TORCH_CHECK(W >= 1, "--world-size: got ", W, ", want >= 1");
  TORCH_CHECK(L >= 1 && W % L == 0, "--nproc-per-node: got ", L, ", want a divisor of ", W);
  const std::string& st = c.sharding_strategy;
  const bool hybrid = st == "hybrid_full" || st == "hybrid_zero2";
  const int S = st == "no_shard" ? 1 : hybrid ? L : W;
  const auto wan = models::WanConfig::from_dims(c.model_dims());
  const int64_t numel = wan.num_params();
  // Per-block gathering holds the root unit and one block at once, when blocks are units:
  // always under the transformer policy; under the size policy only when a block reaches
  // min_num_params (5e7; below it the block list is gathered as one unit, as torch's policy
  // leaves it to the root).
  auto no_blocks = wan;
  no_blocks.num_layers = 0;
  const int64_t block = wan.num_layers > 0 ? (numel - no_blocks.num_params()) / wan.num_layers : 0;
  auto gathered = [&](const std::string& policy) -> int64_t {
    if (policy == "transformer" || block >= 50000000) return no_blocks.num_params() + block;
    return -1;
  };

  struct Row {
    const char* name;
    bool trainable;
    std::string policy;
  };
  std::vector<Row> rows = {{"generator", true, c.generator_fsdp_wrap_strategy}};
  if (c.distillation_loss == "dmd") {
    rows.push_back({"real_score", false, c.real_score_fsdp_wrap_strategy});
    rows.push_back({"fake_score", true, c.fake_score_fsdp_wrap_strategy});
  }
  std::printf("config %s: strategy %s, mixed_precision %s, world size %d (%d per node), shard "
              "group %d, %lld params per model\n",
              file.c_str(), st.c_str(), c.mixed_precision ? "true" : "false", W, L, S,
              (long long)numel);
  std::printf("%-11s %10s %10s %10s %10s %12s %12s %8s\n", "model", "params", "grads",
              "optim", "at_rest", "peak_step", "W=1_at_rest", "ratio");
  trainer::MemoryBytes sum;
  int64_t sum_peak = 0, sum_one = 0;
  for (const auto& r : rows) {
    auto m = trainer::plan_memory(numel, st, S, c.mixed_precision, r.trainable, gathered(r.policy));
    auto one = trainer::plan_memory(numel, st, 1, c.mixed_precision, r.trainable);
    std::printf("%-11s %10s %10s %10s %10s %12s %12s %8.3f\n", r.name,
                gib(m.at_rest.params).c_str(), gib(m.at_rest.grads).c_str(),
                gib(m.at_rest.optimizer).c_str(), gib(m.at_rest.total()).c_str(),
                gib(m.at_rest.total() + m.peak_extra).c_str(),
                gib(one.at_rest.total()).c_str(),
                double(m.at_rest.total()) / double(one.at_rest.total()));
    sum.params += m.at_rest.params;
    sum.grads += m.at_rest.grads;
    sum.optimizer += m.at_rest.optimizer;
    sum_peak += m.at_rest.total() + m.peak_extra;
    sum_one += one.at_rest.total();
  }
  std::printf("%-11s %10s %10s %10s %10s %12s %12s %8.3f\n", "total", gib(sum.params).c_str(),
              gib(sum.grads).c_str(), gib(sum.optimizer).c_str(), gib(sum.total()).c_str(),
              gib(sum_peak).c_str(), gib(sum_one).c_str(),
              double(sum.total()) / double(sum_one));
  std::printf(
      "GiB per rank; peak_step adds the unsharded compute params and compute-dtype "
      "grads held at once (freed strategies: root + one block when blocks are wrap "
      "units, else the whole model; %lld params per block); activations not "
      "included.\n",
      (long long)block);
  return 0;
}

}  // namespace causvid::cli
