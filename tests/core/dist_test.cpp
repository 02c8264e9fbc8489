// tests/core/dist_test.cpp: launcher environment parsing (torchrun, SLURM, OpenMPI, none),
// SLURM node lists, the DistributedSampler and collectives with 2 and 3 ranks.
#include "core/dist.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/core/dist_util.h"
#include "tests/test_util.h"

namespace causvid {
namespace {

using core::DistContext;
using core::parse_dist_env;
using Env = std::map<std::string, std::string>;

TEST(DistEnv, NoLauncherIsASingleProcess) {
  auto d = parse_dist_env({{"HOME", "/root"}});
  EXPECT_EQ(d.launcher, "none");
  EXPECT_EQ(d.world_size, 1);
  EXPECT_EQ(d.rank, 0);
  auto ctx = DistContext::init(d);
  EXPECT_EQ(ctx->world().size(), 1);
  auto t = torch::ones({3});
  ctx->world().all_reduce(t);
  EXPECT_TRUE(t.equal(torch::ones({3})));
}

TEST(DistEnv, Torchrun) {
  auto d = parse_dist_env({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                           {"LOCAL_WORLD_SIZE", "4"}, {"GROUP_RANK", "1"},
                           {"MASTER_ADDR", "[::1]"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(d.launcher, "torchrun");
  EXPECT_EQ(d.rank, 5);
  EXPECT_EQ(d.world_size, 8);
  EXPECT_EQ(d.local_rank, 1);
  EXPECT_EQ(d.local_world_size, 4);
  EXPECT_EQ(d.node_rank, 1);
  EXPECT_EQ(d.num_nodes, 2);
  EXPECT_EQ(d.master_addr, "::1");
  EXPECT_EQ(d.master_port, 1234);
}

TEST(DistEnv, Slurm) {
  auto d = parse_dist_env({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "2"},
                           {"SLURM_NODEID", "1"}, {"SLURM_TASKS_PER_NODE", "4(x2)"},
                           {"SLURM_JOB_NODELIST", "gpu[07-08,11],login"}});
  EXPECT_EQ(d.launcher, "slurm");
  EXPECT_EQ(d.rank, 6);
  EXPECT_EQ(d.local_rank, 2);
  EXPECT_EQ(d.local_world_size, 4);
  EXPECT_EQ(d.node_rank, 1);
  EXPECT_EQ(d.num_nodes, 2);
  EXPECT_EQ(d.master_addr, "gpu07");
  EXPECT_EQ(d.master_port, 29500);
  auto e = parse_dist_env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"},
                           {"SLURM_JOB_NODELIST", "n1"}, {"MASTER_ADDR", "10.0.0.5"},
                           {"MASTER_PORT", "4000"}});
  EXPECT_EQ(e.master_addr, "10.0.0.5");
  EXPECT_EQ(e.master_port, 4000);
}

TEST(DistEnv, SlurmNodelist) {
  using V = std::vector<std::string>;
  EXPECT_EQ(core::expand_slurm_nodelist("node[01-03,07]"),
            (V{"node01", "node02", "node03", "node07"}));
  EXPECT_EQ(core::expand_slurm_nodelist("a1,b[9-10]c,d"), (V{"a1", "b9c", "b10c", "d"}));
  EXPECT_EQ(core::expand_slurm_nodelist("single"), (V{"single"}));
  testing::expect_error_contains([] { core::expand_slurm_nodelist("node[01-03"); },
                                 {"SLURM_JOB_NODELIST", "unbalanced"});
  testing::expect_error_contains([] { core::expand_slurm_nodelist("node[05-03]"); },
                                 {"descending"});
}

TEST(DistEnv, OpenMPI) {
  auto d = parse_dist_env({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                           {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                           {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}, {"MASTER_ADDR", "host0"},
                           {"MASTER_PORT", "29600"}});
  EXPECT_EQ(d.launcher, "mpi");
  EXPECT_EQ(d.rank, 3);
  EXPECT_EQ(d.local_rank, 1);
  EXPECT_EQ(d.node_rank, 1);
  EXPECT_EQ(d.master_addr, "host0");
  EXPECT_EQ(d.master_port, 29600);
  testing::expect_error_contains(
      [] { parse_dist_env({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}}); },
      {"MASTER_ADDR"});
}

TEST(DistEnv, BadValuesNameTheVariable) {
  testing::expect_error_contains([] { parse_dist_env({{"RANK", "x"}, {"WORLD_SIZE", "2"}}); },
                                 {"RANK", "'x'"});
  testing::expect_error_contains([] { parse_dist_env({{"RANK", "2"}, {"WORLD_SIZE", "2"}}); },
                                 {"RANK: got 2"});
  testing::expect_error_contains(
      [] {
        parse_dist_env({{"RANK", "0"}, {"WORLD_SIZE", "4"}, {"LOCAL_WORLD_SIZE", "3"}});
      },
      {"LOCAL_WORLD_SIZE", "divisor"});
  testing::expect_error_contains(
      [] { parse_dist_env({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}); },
      {"MASTER_PORT"});
  testing::expect_error_contains(
      [] { parse_dist_env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}); },
      {"SLURM_JOB_NODELIST"});
}

TEST(DistSampler, DisjointShuffledDeterministic) {
  const int64_t n = 11;
  std::set<int64_t> seen;
  for (int r = 0; r < 3; ++r) {
    auto a = core::distributed_sampler_indices(n, 3, r, true, 7, 2, /*drop_last=*/true);
    EXPECT_EQ(a.size(), 3u);
    for (auto i : a) EXPECT_TRUE(seen.insert(i).second) << "index " << i << " twice";
    EXPECT_EQ(a, core::distributed_sampler_indices(n, 3, r, true, 7, 2, true));
  }
  EXPECT_NE(core::distributed_sampler_indices(n, 1, 0, true, 7, 2, true),
            core::distributed_sampler_indices(n, 1, 0, true, 7, 3, true));
  // No drop_last: padded by wrapping to ceil(11 / 3) = 4 per rank.
  auto b = core::distributed_sampler_indices(n, 3, 2, false, 0, 0, false);
  EXPECT_EQ(b, (std::vector<int64_t>{2, 5, 8, 0}));
}

TEST(DistCollectives, TwoAndThreeRanks) {
  for (int W : {2, 3}) {
    testing::run_ranks(W, [W](std::shared_ptr<DistContext> ctx) {
      const auto& g = ctx->world();
      const int r = g.rank();
      auto t = torch::full({5}, float(r + 1));
      g.all_reduce(t, "sum");
      EXPECT_TRUE(t.equal(torch::full({5}, float(W * (W + 1) / 2))));
      auto m = torch::full({2}, float(r));
      g.all_reduce(m, "max");
      EXPECT_EQ(m[0].item<float>(), float(W - 1));
      auto b = torch::full({3}, float(r == 1 ? 42 : 0));
      g.broadcast(b, 1);
      EXPECT_EQ(b[2].item<float>(), 42.f);
      auto ag = g.all_gather(torch::full({2}, float(r)));
      for (int q = 0; q < W; ++q) EXPECT_EQ(ag[2 * q + 1].item<float>(), float(q));
      // reduce_scatter: input[i] = r * 100 + i; slice q of the sum.
      auto in = torch::arange(4 * W, torch::kFloat32) + 100.f * r;
      auto expect = (torch::arange(4 * W, torch::kFloat32) * W + 100.f * (W * (W - 1) / 2))
                        .narrow(0, 4 * r, 4);
      for (auto algo : {core::ReduceScatterAlgo::kAuto, core::ReduceScatterAlgo::kBackend,
                        core::ReduceScatterAlgo::kAllToAll, core::ReduceScatterAlgo::kAllReduce}) {
        core::DistGroup gg = g;
        gg.reduce_scatter_algo = algo;
        EXPECT_TRUE(gg.reduce_scatter(in).allclose(expect)) << "W " << W;
      }
      EXPECT_EQ(core::resolve_seed(5, g), 5);
      auto s = torch::full({1}, double(core::resolve_seed(0, g)), torch::kFloat64);
      auto s_max = s.clone();
      g.all_reduce(s_max, "max");
      EXPECT_EQ(s.item<double>(), s_max.item<double>()) << "seed 0 must be broadcast";
      g.barrier();
    });
  }
}

TEST(DistCollectives, HybridSubGroups) {
  // 4 ranks as 2 nodes x 2: shard groups {0,1},{2,3}; replica groups {0,2},{1,3}.
  testing::run_ranks(
      4,
      [](std::shared_ptr<DistContext> ctx) {
        const int r = ctx->rank();
        EXPECT_EQ(ctx->shard_group().size(), 2);
        EXPECT_EQ(ctx->replica_group().size(), 2);
        auto t = torch::full({1}, float(r));
        ctx->shard_group().all_reduce(t);
        EXPECT_EQ(t.item<float>(), r < 2 ? 1.f : 5.f);
        auto u = torch::full({1}, float(r));
        ctx->replica_group().all_reduce(u);
        EXPECT_EQ(u.item<float>(), r % 2 == 0 ? 2.f : 4.f);
      },
      /*local_world=*/2);
}

}  // namespace
}  // namespace causvid
