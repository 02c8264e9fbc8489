// bench/fsdp_bench.cpp: `causvid bench fsdp`: per-rank memory at rest (params + grads + AdamW
// state, measured from the live ShardedModule / ShardedAdamW) for W = 1 and W = 2 under every
// sharding strategy on a mid-size Wan DiT, the step time of each strategy relative to no_shard
// measured in the same run, the peak of unsharded parameter bytes a `full` step materialises
// with per-block gathering vs the gather-all mode (and the step-time ratio between them, with
// and without gradient checkpointing), and Gloo reduce_scatter emulations (all-to-all vs
// all-reduce).
// Ranks are threads over Gloo loopback (c10d::HashStore), so on a small machine the two ranks
// share the cores: step times compare strategies, not scaling.
#include <cstdio>
#include <mutex>
#include <thread>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include "bench/bench_util.h"
#include "bench/benches.h"
#include "core/dist.h"
#include "models/wan/wan_model.h"
#include "trainer/fsdp.h"
#include "trainer/optimizer.h"

namespace causvid::bench {
namespace {

void run_threads(int W, const std::function<void(std::shared_ptr<core::DistContext>)>& fn) {
  core::prepare_thread_ranks();
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::thread> ts;
  std::exception_ptr err;
  std::mutex mu;
  for (int r = 0; r < W; ++r)
    ts.emplace_back([&, r] {
      try {
        core::DistEnv e;
        e.rank = r;
        e.world_size = W;
        e.local_world_size = W;
        e.local_rank = r;
        auto ctx = core::DistContext::init_with_store(store, e);
        fn(ctx);
      } catch (...) {
        std::lock_guard<std::mutex> g(mu);
        if (!err) err = std::current_exception();
      }
    });
  for (auto& t : ts) t.join();
  if (err) std::rethrow_exception(err);
}

struct Result {
  int64_t bytes = 0;
  double step_s = 0;
  int64_t peak_gathered = 0;  // max unsharded compute-param bytes held during a step
  int64_t whole = 0;          // gather bytes of every unit (the whole unsharded model)
  bool per_unit = false;
};

constexpr double kMiB = 1024.0 * 1024.0;

// One model and step configuration, measured under different strategies / world sizes.
struct FsdpBench {
  models::WanConfig cfg;
  bool mp = false;  // bf16 compute params
  int reps = 3;

  // Rank 0's bytes at rest, median step time and gather statistics, W ranks as threads.
  Result measure(const std::string& strategy, int W, bool per_unit, bool ckpt) const {
    Result res;
    std::mutex mu;
    run_threads(W, [&](std::shared_ptr<core::DistContext> ctx) {
      models::WanModel m(cfg);
      m->init_weights(0);
      m->set_gradient_checkpointing(ckpt);
      trainer::FsdpOptions o;
      o.strategy = strategy;
      o.wrap_policy = "transformer";
      o.mixed_precision = mp;
      o.per_unit = per_unit;
      trainer::ShardedModule sm(m.ptr(), ctx, o);
      trainer::ShardedAdamW opt({&sm}, {});
      auto gen = at::detail::createCPUGenerator(ctx->rank());
      auto x = torch::randn({1, cfg.in_dim, 2, 16, 16}, gen);
      auto t = torch::full({1}, 500.0);
      auto c = torch::randn({1, cfg.text_len, cfg.text_dim}, gen);
      auto step = [&] {
        opt.zero_grad();
        sm.gather_params();
        m->forward(x, t, c).to(torch::kFloat32).square().mean().backward();
        sm.reduce_grads();
        opt.clip_grad_norm(10.0);
        opt.step();
      };
      sm.reset_gather_stats();
      double s = time_median(step, reps, 1);
      auto bytes = sm.memory_at_rest(opt.state_bytes()).total();
      ctx->world().barrier();
      if (ctx->rank() == 0) {
        std::lock_guard<std::mutex> g(mu);
        res.bytes = bytes;
        res.step_s = s;
        res.peak_gathered = sm.gather_stats().peak_bytes;
        res.per_unit = sm.per_unit();
        for (size_t i = 0; i < sm.units().size(); ++i) res.whole += sm.unit_gather_bytes(i);
      }
    });
    return res;
  }

  // Per-rank bytes at rest for W=1 and W=2 under each strategy, and step time vs no_shard.
  void strategies(bool pu) const {
    const double mib = kMiB;
    std::printf("\n%-14s %14s %14s %10s %12s %12s\n", "strategy", "W=1 MiB/rank", "W=2 MiB/rank",
                "W2/W1", "W=2 step s", "vs no_shard");
    // The baseline is measured before and after the others (shared machines drift); the
    // faster of the two is used.
    std::vector<std::pair<std::string, std::pair<Result, Result>>> rows;
    auto base = measure("no_shard", 2, pu, false);
    for (const char* s : {"full", "shard_grad_op", "hybrid_full", "hybrid_zero2"})
      rows.push_back({s, {measure(s, 1, pu, false), measure(s, 2, pu, false)}});
    auto base2 = measure("no_shard", 2, pu, false);
    const double base_s = std::min(base.step_s, base2.step_s);
    auto one = measure("no_shard", 1, pu, false);
    std::printf("%-14s %14.1f %14.1f %10.3f %12.3f %12.3f  (runs: %.3f s, %.3f s)\n", "no_shard",
                one.bytes / mib, base.bytes / mib, double(base.bytes) / double(one.bytes), base_s,
                1.0, base.step_s, base2.step_s);
    for (const auto& [s, r] : rows)
      std::printf("%-14s %14.1f %14.1f %10.3f %12.3f %12.3f\n", s.c_str(), r.first.bytes / mib,
                  r.second.bytes / mib, double(r.second.bytes) / double(r.first.bytes),
                  r.second.step_s, r.second.step_s / base_s);
    std::printf(
        "(hybrid_* with 2 ranks on one node shard like full / shard_grad_op; full / "
        "hybrid_full gather %s)\n",
        pu ? "per block (recomputing blocks in backward)" : "all units for the step");
  }

  // Per-block gathering vs gather-all for `full`, W = 2: peak unsharded parameter bytes of a
  // step and step time. Per-block gathering recomputes each block in backward, so it is
  // compared with gather-all both without and with gradient checkpointing.
  void gather() const {
    const double mib = kMiB;
    std::printf(
        "\nfull, W=2: peak unsharded compute params per rank during a step "
        "(whole = every unit gathered)\n");
    std::printf("%-11s %5s %12s %12s %11s %10s %15s\n", "gathering", "ckpt", "peak MiB",
                "whole MiB", "peak/whole", "step s", "vs gather-all");
    for (bool ckpt : {false, true}) {
      // Gather-all measured before and after per-unit (drift on a shared machine).
      auto a1 = measure("full", 2, false, ckpt);
      auto pr = measure("full", 2, true, ckpt);
      auto a2 = measure("full", 2, false, ckpt);
      const double all_s = std::min(a1.step_s, a2.step_s);
      std::printf("%-11s %5s %12.2f %12.2f %11.3f %10.3f %15.3f  (runs: %.3f s, %.3f s)\n",
                  "gather-all", ckpt ? "on" : "off", a1.peak_gathered / mib, a1.whole / mib,
                  double(a1.peak_gathered) / double(a1.whole), all_s, 1.0, a1.step_s, a2.step_s);
      std::printf("%-11s %5s %12.2f %12.2f %11.3f %10.3f %15.3f%s\n", "per-block",
                  ckpt ? "on" : "off", pr.peak_gathered / mib, pr.whole / mib,
                  double(pr.peak_gathered) / double(pr.whole), pr.step_s, pr.step_s / all_s,
                  pr.per_unit ? "" : "  (NOT per-unit: no block runner)");
    }
    std::printf(
        "(peak/whole -> (root + 1 block) / model as blocks grow; per-block always "
        "recomputes blocks in backward)\n");
  }
};

// Gloo's reduce-scatter against the emulations, on `mb` MiB of fp32.
void reduce_scatter_table(double mb) {
  const double mib = kMiB;
  // Gloo's own reduce-scatter (LibTorch 2.x) against the two emulations; the fastest here
  // is what ReduceScatterAlgo::kAuto uses on Gloo (all-to-all).
  const int64_t n = int64_t(mb * mib / 4) / 2 * 2;
  std::printf("\nreduce_scatter of %.0f MiB fp32, W=2 (median of 3):\n", n * 4 / mib);
  for (auto algo : {core::ReduceScatterAlgo::kBackend, core::ReduceScatterAlgo::kAllToAll,
                    core::ReduceScatterAlgo::kAllReduce}) {
    double secs = 0;
    run_threads(2, [&](std::shared_ptr<core::DistContext> ctx) {
      core::DistGroup g = ctx->world();
      g.reduce_scatter_algo = algo;
      auto in = torch::randn({n});
      double s = time_median([&] { g.reduce_scatter(in); }, 3, 1);
      if (ctx->rank() == 0) secs = s;
    });
    static double first = 0;
    if (first == 0) first = secs;
    std::printf("  %-28s %8.3f s  %6.2f GB/s  ratio to the backend's %.2f\n",
                algo == core::ReduceScatterAlgo::kBackend    ? "backend reduce_scatter"
                : algo == core::ReduceScatterAlgo::kAllToAll ? "all_to_all + local sum"
                                                             : "all_reduce + slice",
                secs, n * 4 / secs / 1e9, secs / first);
  }
}

}  // namespace

int bench_fsdp(const FsdpBenchArgs& a) {
  const auto& only = a.only;
  TORCH_CHECK(only == "all" || only == "strategies" || only == "gather" || only == "reduce_scatter",
              "--only: got '", only, "', want all|strategies|gather|reduce_scatter");
  auto section = [&](const char* s) { return only == "all" || only == s; };
  auto cfg = models::WanConfig::preset(a.preset);
  cfg.text_len = 32;  // keep the cross-attention small: this measures sharding, not attention
  const int reps = static_cast<int>(a.steps);
  std::printf("model %s: %lld params, mixed_precision %s, threads %d\n", a.preset.c_str(),
              (long long)cfg.num_params(), a.mixed_precision ? "on" : "off",
              at::get_num_threads());

  const FsdpBench bench{cfg, a.mixed_precision, reps};
  if (section("strategies")) bench.strategies(!a.gather_all);
  if (section("gather")) bench.gather();
  if (section("reduce_scatter")) reduce_scatter_table(double(a.rs_mb));
  return 0;
}

}  // namespace causvid::bench
