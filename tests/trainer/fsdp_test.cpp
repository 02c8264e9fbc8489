// tests/trainer/fsdp_test.cpp: sharded data parallel on the tiny Wan DiT. For every sharding
// strategy, W ranks (threads over Gloo) training a few AdamW steps on the same global batch
// equal one process (plain torch::optim::AdamW in fp32; our W=1 run under mixed precision),
// with and without gradient checkpointing; sharded checkpoints resume with W=2 and W=1.
// full / hybrid_full gather per block (ShardedModule's block runner): the peak of gathered
// bytes holds the root unit and one block, frozen modules run forward-only, and a module
// called several times per step accumulates its grads.
#include "trainer/fsdp.h"

#include <gtest/gtest.h>

#include "models/wan/wan_model.h"
#include "tests/core/dist_util.h"
#include "tests/test_util.h"
#include "trainer/optimizer.h"
#include "trainer/checkpoint.h"

namespace causvid {
namespace {

using models::WanConfig;
using models::WanModel;
using trainer::FsdpOptions;
using trainer::ShardedAdamW;
using trainer::ShardedModule;
using SD = std::map<std::string, torch::Tensor>;

constexpr int kGlobalBatch = 4;
constexpr double kLr = 1e-3, kClip = 1.0;

WanModel tiny_model(bool ckpt, int64_t layers = 2) {
  auto cfg = WanConfig::preset("tiny");
  cfg.num_layers = layers;
  WanModel m(cfg);
  torch::NoGradGuard ng;
  auto gen = at::detail::createCPUGenerator(123);
  for (auto& p : m->parameters()) p.normal_(0, 0.2, gen);
  m->set_gradient_checkpointing(ckpt);
  return m;
}

struct Batch {
  torch::Tensor x, t, ctx, target;
};
Batch batch(int step) {
  auto gen = at::detail::createCPUGenerator(1000 + step);
  Batch b;
  b.x = torch::randn({kGlobalBatch, 4, 2, 4, 4}, gen);
  b.t = torch::rand({kGlobalBatch}, gen) * 1000;
  b.ctx = torch::randn({kGlobalBatch, 8, 48}, gen);
  b.target = torch::randn({kGlobalBatch, 4, 2, 4, 4}, gen);
  return b;
}

// calls > 1: the model is called that many times per step (as CausVid's critic), on
// shifted inputs, and the losses are summed.
torch::Tensor loss_of(WanModel& m, const Batch& b, int64_t lo, int64_t n, int calls = 1) {
  torch::Tensor loss;
  for (int c = 0; c < calls; ++c) {
    auto out =
        m->forward(b.x.narrow(0, lo, n) + 0.5 * c, b.t.narrow(0, lo, n), b.ctx.narrow(0, lo, n));
    auto l = torch::mse_loss(out.to(torch::kFloat32), b.target.narrow(0, lo, n));
    loss = c == 0 ? l : loss + l;
  }
  return loss;
}

SD plain_reference(int steps, bool ckpt, int64_t layers = 2, int calls = 1) {
  auto m = tiny_model(ckpt, layers);
  torch::optim::AdamW opt(m->parameters(),
                          torch::optim::AdamWOptions(kLr).betas({0.9, 0.999}).eps(1e-8).weight_decay(0.01));
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    loss_of(m, batch(s), 0, kGlobalBatch, calls).backward();
    torch::nn::utils::clip_grad_norm_(m->parameters(), kClip);
    opt.step();
  }
  SD sd;
  for (const auto& kv : m->named_parameters()) sd[kv.key()] = kv.value().detach().clone();
  return sd;
}

struct TrainRun {
  std::string strategy = "full";
  std::string wrap = "transformer";
  int world = 2, local_world = 0;
  bool ckpt = false, mp = false;
  int steps = 3;
  std::string save_dir;   // save after save_at steps (collective)
  int save_at = -1;
  std::string load_dir;   // resume from here before training (steps counted from its step)
  bool per_unit = true;   // FsdpOptions::per_unit
  int64_t layers = 2;
  int calls = 1;  // model calls per step
  // Separate backward per call (grads accumulate in the module) instead of one summed loss.
  bool backward_per_call = false;
};

// What rank 0's ShardedModule saw in its last step.
struct RunStats {
  bool per_unit = false;
  trainer::GatherStats stats;
  int64_t step_bytes = 0;            // gather bytes of the step units (root)
  int64_t max_block_bytes = 0;       // largest gather of one block's units
  int64_t all_bytes = 0;             // gather bytes of every unit (the whole model)
  int64_t after_forward_bytes = -1;  // gathered between the forward and the backward
};

// Trains and returns the full state dict from rank 0.
SD run_fsdp(const TrainRun& run, RunStats* stats = nullptr) {
  SD result;
  std::mutex mu;
  testing::run_ranks(
      run.world,
      [&](std::shared_ptr<core::DistContext> ctx) {
        auto m = tiny_model(run.ckpt, run.layers);
        FsdpOptions o;
        o.strategy = run.strategy;
        o.wrap_policy = run.wrap;
        o.min_num_params = 5000;
        o.mixed_precision = run.mp;
        o.per_unit = run.per_unit;
        ShardedModule sm(m.ptr(), ctx, o);
        trainer::AdamWOptions ao;
        ao.lr = kLr;
        ShardedAdamW opt({&sm}, ao);
        int start = 0;
        if (!run.load_dir.empty()) {
          const auto st = trainer::read_checkpoint_state(run.load_dir);
          trainer::load_checkpoint(run.load_dir, st, {{"generator", &sm, &opt}});
          start = int(st.at("step").get<int64_t>());
        }
        const int W = ctx->world_size(), r = ctx->rank(), per = kGlobalBatch / W;
        for (int s = start; s < run.steps; ++s) {
          if (s == run.save_at)
            trainer::save_checkpoint(run.save_dir, s, {{{"generator", &sm, &opt}}});
          opt.zero_grad();
          sm.reset_gather_stats();
          sm.gather_params();
          int64_t after_forward = -1;
          if (run.backward_per_call) {
            for (int c = 0; c < run.calls; ++c) {
              Batch b = batch(s);
              b.x = b.x + 0.5 * c;
              loss_of(m, b, r * per, per).backward();
            }
          } else {
            auto loss = loss_of(m, batch(s), r * per, per, run.calls);
            after_forward = sm.gather_stats().current_bytes;
            loss.backward();
          }
          sm.reduce_grads();
          opt.clip_grad_norm(kClip);
          opt.step();
          if (stats && r == 0 && s + 1 == run.steps) {
            stats->per_unit = sm.per_unit();
            stats->stats = sm.gather_stats();
            stats->after_forward_bytes = after_forward;
            std::map<int64_t, int64_t> per_block;
            for (size_t i = 0; i < sm.units().size(); ++i) {
              const auto& u = sm.units()[i];
              stats->all_bytes += sm.unit_gather_bytes(i);
              if (u.block < 0)
                stats->step_bytes += sm.unit_gather_bytes(i);
              else
                per_block[u.block] += sm.unit_gather_bytes(i);
            }
            for (const auto& kv : per_block)
              stats->max_block_bytes = std::max(stats->max_block_bytes, kv.second);
          }
        }
        // Gathered one unit at a time; only world rank 0 keeps the full copy.
        auto sd = sm.full_state_dict(/*rank0_only=*/true);
        if (r != 0) EXPECT_TRUE(sd.empty()) << "rank " << r << " kept a full state dict";
        if (r == 0) {
          std::lock_guard<std::mutex> g(mu);
          result = sd;
        }
      },
      run.local_world);
  return result;
}

// Max |a - b| <= atol and mean |a - b| <= mean_tol over every parameter.
void expect_close(const SD& a, const SD& b, double atol, const std::string& what,
                  double mean_tol = 1e-6) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double worst = 0, sum = 0, n = 0;
  std::string worst_key;
  for (const auto& [k, v] : a) {
    ASSERT_TRUE(b.count(k)) << what << ": " << k;
    auto diff = (v.to(torch::kFloat32) - b.at(k).to(torch::kFloat32)).abs();
    double d = diff.max().item<double>();
    sum += diff.sum().item<double>();
    n += double(diff.numel());
    if (d > worst) worst = d, worst_key = k;
  }
  EXPECT_LE(worst, atol) << what << ": worst key " << worst_key;
  EXPECT_LE(sum / n, mean_tol) << what << ": mean abs difference";
}

TEST(Fsdp, EveryStrategyW2EqualsSingleProcessFp32) {
  auto ref = plain_reference(3, false);
  {  // the comparison is meaningful: 3 steps move the parameters far beyond the tolerance
    auto init = plain_reference(0, false);
    double moved = 0;
    for (const auto& [k, v] : init) moved = std::max(moved, (v - ref.at(k)).abs().max().item<double>());
    EXPECT_GT(moved, 1e-3);
  }
  for (const char* s : {"full", "shard_grad_op", "zero2", "no_shard"}) {
    TrainRun r;
    r.strategy = s;
    expect_close(run_fsdp(r), ref, 2e-5, s);
  }
  TrainRun sz;
  sz.wrap = "size";
  expect_close(run_fsdp(sz), ref, 2e-5, "full/size policy");
}

TEST(Fsdp, HybridStrategiesTwoNodesOfTwo) {
  auto ref = plain_reference(2, false);
  for (const char* s : {"hybrid_full", "hybrid_zero2"}) {
    TrainRun r;
    r.strategy = s;
    r.world = 4;
    r.local_world = 2;
    r.steps = 2;
    expect_close(run_fsdp(r), ref, 2e-5, s);
  }
}

TEST(Fsdp, GradientCheckpointing) {
  auto ref = plain_reference(3, true);
  for (const char* s : {"full", "no_shard"}) {
    TrainRun r;
    r.strategy = s;
    r.ckpt = true;
    expect_close(run_fsdp(r), ref, 2e-5, s);
  }
  TrainRun all;  // the gather-all mode keeps working (and checkpoints inside it)
  all.ckpt = true;
  all.per_unit = false;
  RunStats st;
  expect_close(run_fsdp(all, &st), ref, 2e-5, "full gather-all");
  EXPECT_FALSE(st.per_unit);
  EXPECT_EQ(st.stats.peak_bytes, st.all_bytes);
}

TEST(Fsdp, HybridFullPerUnitWithCheckpointingAndMixedPrecision) {
  // Two nodes of two: blocks are gathered per call inside the node, grads all-reduced
  // across nodes from inside the blocks' backward.
  TrainRun r;
  r.strategy = "hybrid_full";
  r.world = 4;
  r.local_world = 2;
  r.steps = 2;
  r.ckpt = true;
  RunStats st;
  expect_close(run_fsdp(r, &st), plain_reference(2, true), 2e-5, "hybrid_full ckpt");
  EXPECT_TRUE(st.per_unit);
  EXPECT_EQ(st.stats.backward_reduces, 2);  // one unit per block, two blocks
  TrainRun one;
  one.world = 1;
  one.steps = 2;
  one.mp = true;
  auto ref = run_fsdp(one);
  for (bool ckpt : {false, true}) {
    TrainRun h = r;
    h.mp = true;
    h.ckpt = ckpt;
    expect_close(run_fsdp(h), ref, 7e-3, "hybrid_full mp", 2e-4);
  }
}

TEST(Fsdp, PerUnitPeakHoldsRootAndOneBlock) {
  // Four blocks; a step's peak of gathered bytes is the root plus one block (the gather-all
  // mode holds the whole model), and between forward and backward only the root is held.
  auto ref = plain_reference(2, false, 4);
  for (bool mp : {false, true}) {
    TrainRun r;
    r.layers = 4;
    r.steps = 2;
    r.mp = mp;
    RunStats st;
    auto got = run_fsdp(r, &st);
    if (!mp) expect_close(got, ref, 2e-5, "full 4 blocks");
    ASSERT_TRUE(st.per_unit);
    EXPECT_GT(st.step_bytes, 0);
    EXPECT_GT(st.max_block_bytes, 0);
    EXPECT_LE(st.stats.peak_bytes, st.step_bytes + st.max_block_bytes) << "mp " << mp;
    EXPECT_LT(double(st.stats.peak_bytes), 0.5 * double(st.all_bytes)) << "mp " << mp;
    EXPECT_EQ(st.after_forward_bytes, st.step_bytes);
    EXPECT_EQ(st.stats.current_bytes, 0);  // reduce_grads() freed the root
    // 1 root gather + 4 forward + 4 backward block gathers; 4 reductions in backward.
    EXPECT_EQ(st.stats.gathers, 9);
    EXPECT_EQ(st.stats.backward_reduces, 4);
    TrainRun all = r;
    all.per_unit = false;
    RunStats sa;
    expect_close(run_fsdp(all, &sa), got, mp ? 7e-3 : 2e-5, "gather-all vs per-unit", 2e-4);
    EXPECT_EQ(sa.stats.peak_bytes, sa.all_bytes);
  }
}

TEST(Fsdp, ModuleCalledSeveralTimesPerStep) {
  // As CausVid's critic: each call re-gathers every block; grads of the calls accumulate
  // (one summed loss, or one backward per call) before reduce_grads().
  auto ref = plain_reference(2, false, 2, 2);
  for (bool per_call : {false, true}) {
    for (bool ckpt : {false, true}) {
      TrainRun r;
      r.steps = 2;
      r.calls = 2;
      r.ckpt = ckpt;
      r.backward_per_call = per_call;
      RunStats st;
      expect_close(run_fsdp(r, &st), ref, 2e-5, per_call ? "backward per call" : "summed loss");
      EXPECT_EQ(st.stats.gathers, 1 + 2 * 2 * 2);
      EXPECT_EQ(st.stats.backward_reduces, 2 * 2);
    }
  }
}

TEST(Fsdp, FrozenModuleForwardUnderFullSharding) {
  // The real score: frozen, full sharding, forward only (also the KV-cache inference path
  // and a gradient w.r.t. the input through the frozen model).
  auto plain = tiny_model(false, 3);
  torch::NoGradGuard ng0;
  Batch b = batch(7);
  torch::Tensor want, want_grad;
  {
    torch::AutoGradMode on(true);
    for (auto& p : plain->parameters()) p.set_requires_grad(false);
    auto x = b.x.clone().set_requires_grad(true);
    want = plain->forward(x, b.t, b.ctx);
    want.square().sum().backward();
    want_grad = x.grad();
  }
  const int64_t nfpb = 1, fs = 4;
  torch::Tensor want_cached;
  {
    models::KvCache cache(plain->kv_cache_options(kGlobalBatch, fs, 2));
    models::CrossAttnCache xc;
    auto t = torch::full({kGlobalBatch, 1}, 400.0f);
    auto y0 = plain->forward_cached(b.x.slice(2, 0, 1), t, b.ctx, cache, xc, 0);
    auto y1 = plain->forward_cached(b.x.slice(2, 1, 2), t, b.ctx, cache, xc, fs * nfpb);
    want_cached = torch::cat({y0, y1}, 2);
  }
  testing::run_ranks(2, [&](std::shared_ptr<core::DistContext> ctx) {
    auto m = tiny_model(false, 3);
    FsdpOptions o;
    o.trainable = false;
    o.wrap_policy = "transformer";
    ShardedModule sm(m.ptr(), ctx, o);
    ASSERT_TRUE(sm.per_unit());
    sm.gather_params();
    sm.reset_gather_stats();
    torch::Tensor got;
    {
      torch::NoGradGuard ng;
      got = m->forward(b.x, b.t, b.ctx);
    }
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
    int64_t root = 0, block = 0;
    for (size_t i = 0; i < sm.units().size(); ++i)
      (sm.units()[i].block < 0 ? root : block) = sm.unit_gather_bytes(i);
    EXPECT_EQ(sm.gather_stats().gathers, 3);  // one per block
    EXPECT_EQ(sm.gather_stats().peak_bytes, root + block);
    EXPECT_EQ(sm.gather_stats().current_bytes, root);
    for (const auto& kv : m->blocks->named_parameters())
      EXPECT_EQ(kv.value().numel(), 0) << kv.key();
    {  // input gradient through the frozen sharded model (recomputed per block)
      torch::AutoGradMode on(true);
      auto x = b.x.clone().set_requires_grad(true);
      auto y = m->forward(x, b.t, b.ctx);
      y.square().sum().backward();
      EXPECT_LT((x.grad() - want_grad).abs().max().item<double>(), 1e-4);
      for (auto& p : m->parameters()) EXPECT_FALSE(p.grad().defined());
    }
    {  // KV-cache inference: the first call fills the cross-attention cache through the runner
      torch::NoGradGuard ng;
      models::KvCache cache(m->kv_cache_options(kGlobalBatch, fs, 2));
      models::CrossAttnCache xc;
      auto t = torch::full({kGlobalBatch, 1}, 400.0f);
      auto y0 = m->forward_cached(b.x.slice(2, 0, 1), t, b.ctx, cache, xc, 0);
      auto y1 = m->forward_cached(b.x.slice(2, 1, 2), t, b.ctx, cache, xc, fs * nfpb);
      EXPECT_LT((torch::cat({y0, y1}, 2) - want_cached).abs().max().item<double>(), 1e-5);
    }
    sm.reshard();
    EXPECT_EQ(sm.gather_stats().current_bytes, 0);
    testing::expect_error_contains([&] { sm.reduce_grads(); }, {"frozen"});
  });
}

TEST(Fsdp, MixedPrecisionW2EqualsW1) {
  for (bool ckpt : {false, true}) {
    TrainRun one;
    one.world = 1;
    one.mp = true;
    one.ckpt = ckpt;
    auto ref = run_fsdp(one);
    // bf16 compute on half batches differs from the whole batch by bf16 rounding only.
    auto fp32 = plain_reference(3, ckpt);
    for (const char* s : {"full", "zero2", "no_shard"}) {
      TrainRun r = one;
      r.world = 2;
      r.strategy = s;
      auto got = run_fsdp(r);
      // Adam moves each element by ~lr per step whatever the gradient's size, so a
      // rounding-level sign flip of a tiny gradient shows in the max; the mean stays small.
      expect_close(got, ref, 7e-3, std::string(s) + " mp", 2e-4);
      expect_close(got, fp32, 7e-3, std::string(s) + " mp vs fp32", 5e-4);
    }
  }
}

TEST(Fsdp, SaveW2ResumeW2AndW1EqualsUninterrupted) {
  testing::TempDir dir;
  TrainRun full;
  full.steps = 4;
  full.save_dir = dir.path();
  full.save_at = 2;
  auto uninterrupted = run_fsdp(full);
  ASSERT_EQ(trainer::latest_checkpoint(dir.path()), dir.path() + "/checkpoint_model_000002");
  TrainRun w2;
  w2.steps = 4;
  w2.load_dir = dir.path() + "/checkpoint_model_000002";
  expect_close(run_fsdp(w2), uninterrupted, 1e-6, "resume W=2");
  TrainRun w1 = w2;
  w1.world = 1;
  expect_close(run_fsdp(w1), uninterrupted, 2e-5, "resume W=1");
  TrainRun w3 = w2;  // different layout: no_shard with 2 ranks
  w3.strategy = "no_shard";
  expect_close(run_fsdp(w3), uninterrupted, 2e-5, "resume no_shard W=2");
}

TEST(Fsdp, UncommittedCheckpointAndBadOptionsAreClearErrors) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir.file("checkpoint_model_000003"));
  EXPECT_EQ(trainer::latest_checkpoint(dir.path()), "");
  auto m = tiny_model(false);
  auto ctx = std::make_shared<core::DistContext>();
  ShardedModule sm(m.ptr(), ctx, FsdpOptions{});
  testing::expect_error_contains(
      [&] { trainer::read_checkpoint_state(dir.file("checkpoint_model_000003")); },
      {"checkpoint_model_000003", "trainer_state.json"});
  FsdpOptions bad;
  bad.strategy = "fully";
  testing::expect_error_contains([&] { ShardedModule(tiny_model(false).ptr(), ctx, bad); },
                                 {"sharding_strategy", "fully"});
  FsdpOptions badt;
  badt.wrap_policy = "transformer";
  badt.transformer_module = "layers";
  testing::expect_error_contains([&] { ShardedModule(tiny_model(false).ptr(), ctx, badt); },
                                 {"fsdp_transformer_module", "layers"});
}

TEST(Fsdp, FullShardingHalvesMemoryAtRest) {
  std::vector<int64_t> bytes(3);
  for (int W : {1, 2}) {
    testing::run_ranks(W, [&](std::shared_ptr<core::DistContext> ctx) {
      auto m = tiny_model(false);
      FsdpOptions o;
      ShardedModule sm(m.ptr(), ctx, o);
      ShardedAdamW opt({&sm}, {});
      sm.gather_params();
      loss_of(m, batch(0), 0, 1).backward();
      sm.reduce_grads();
      opt.step();
      if (ctx->rank() == 0) bytes[W] = sm.memory_at_rest(opt.state_bytes()).total();
      // Unsharded parameters are freed at rest.
      for (auto& p : m->parameters()) EXPECT_EQ(p.numel(), 0);
    });
  }
  EXPECT_LE(double(bytes[2]), 0.55 * double(bytes[1]));
}

TEST(Fsdp, BenchRejectsUnknownSection) {
  std::string out;
  int rc = testing::run_command(testing::causvid_binary() + " bench fsdp --only bogus", &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("--only"), std::string::npos) << out;
}

}  // namespace
}  // namespace causvid
