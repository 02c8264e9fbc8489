// core/dist.h: the distributed runtime. DistEnv is what the launcher told this process (rank,
// world size, local rank, node, master address/port); parse_dist_env is a pure function of an
// environment map so every launcher's variables are unit-tested without the launchers.
// DistContext turns a DistEnv into a c10d::TCPStore + c10d::ProcessGroupGloo (or
// ProcessGroupNCCL on CUDA builds, see core/dist_cuda.cpp) and offers the collectives the
// sharded trainer needs, plus the intra-node "shard" and inter-node "replica" sub-groups of
// hybrid sharding.
// Ports CausVid's causvid/util.py (launch_distributed_job: torch.distributed.init_process_group
// with timeout 1800 s, set_seed(seed + rank)) and the sampler of
// torch.utils.data.distributed.DistributedSampler.
//
// Launchers recognised (first match wins):
//   torchrun : RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR/PORT
//   SLURM    : SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NODEID, SLURM_NTASKS_PER_NODE
//              (or SLURM_TASKS_PER_NODE), master = MASTER_ADDR or first host of
//              SLURM_JOB_NODELIST ("node[01-03,07]" compressed form), port MASTER_PORT or 29500
//   OpenMPI  : OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE, MASTER_ADDR/PORT
//   none     : a single process, world size 1, no store, no network.
// Collectives run on tensors of the backend's device: CPU tensors for Gloo, tensors on
// cuda:LOCAL_RANK for NCCL (DistGroup::device()).
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace causvid::core {

struct DistEnv {
  std::string launcher = "none";  // "torchrun" | "slurm" | "mpi" | "none"
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  int node_rank = 0;
  int num_nodes = 1;
  std::string master_addr = "127.0.0.1";  // brackets of "[::1]" removed
  int master_port = 29500;
};

// Parses the launcher variables of `env`. Throws naming the variable on bad or inconsistent
// values (rank >= world size, non-numeric, local world size not dividing world size...).
DistEnv parse_dist_env(const std::map<std::string, std::string>& env);
// The process environment as a map (for parse_dist_env).
std::map<std::string, std::string> process_env();
// Expands a SLURM host list: "node[01-03,07],gpu5" -> {node01,node02,node03,node07,gpu5}.
std::vector<std::string> expand_slurm_nodelist(const std::string& s);

// kBackend = the backend's own reduce-scatter (Gloo has one since LibTorch 2.x); kAuto = the
// backend's on NCCL, all-to-all + local sum on Gloo (`bench fsdp --only reduce_scatter`: on
// loopback Gloo's own took 1.2-1.6x the all-to-all's time with LibTorch 2.11).
enum class ReduceScatterAlgo { kAuto, kBackend, kAllToAll, kAllReduce };

// One communicator (world or a sub-group). size() == 1 groups need no process group at all.
class DistGroup {
 public:
  DistGroup() = default;
  DistGroup(c10::intrusive_ptr<c10d::Backend> pg, int rank, int size,
            std::chrono::milliseconds timeout, std::string name,
            torch::Device device = torch::kCPU);
  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& name() const { return name_; }
  // The device collective tensors must live on (CPU for Gloo, the local GPU for NCCL).
  torch::Device device() const { return device_; }

  // In place. op: "sum" | "avg" | "max".
  void all_reduce(torch::Tensor& t, const std::string& op = "sum") const;
  void broadcast(torch::Tensor& t, int root) const;
  // in: [n] contiguous -> out [size * n] (rank r's data at r*n).
  torch::Tensor all_gather(const torch::Tensor& in) const;
  void all_gather_into(torch::Tensor& out, const torch::Tensor& in) const;
  // in: [size * n] -> this rank's slice of the elementwise sum, [n].
  torch::Tensor reduce_scatter(const torch::Tensor& in) const;
  void barrier() const;
  // The same communicator with another collective timeout (the start-up barrier).
  DistGroup with_timeout(std::chrono::milliseconds timeout) const;
  // Elementwise sum of small counters over the group (moved to the backend's device and
  // back), e.g. the done / failed totals of the batch tools.
  std::vector<int64_t> sum(const std::vector<int64_t>& counts) const;

  ReduceScatterAlgo reduce_scatter_algo = ReduceScatterAlgo::kAuto;

  // The store and world position used to name the dead ranks when a collective fails
  // (dist_roll_call); set by DistContext for every group it makes.
  void set_roll_call(c10::intrusive_ptr<c10d::Store> store, int world_rank, int world_size);

 private:
  void wait(c10::intrusive_ptr<c10d::Work>& w, const char* what) const;
  c10::intrusive_ptr<c10d::Store> store_;
  int world_rank_ = 0, world_size_ = 1;
  c10::intrusive_ptr<c10d::Backend> pg_;
  int rank_ = 0, size_ = 1;
  torch::Device device_ = torch::kCPU;
  std::chrono::milliseconds timeout_{1800000};
  std::string name_ = "world";
};

// After a failed collective: every surviving rank writes "rollcall/<rank>" to the store and
// waits up to `window` until all have; returns the ranks that had not ("rank 1 of 4 had not
// answered the roll call after 3 s (dead, stuck, or still busy elsewhere)"), or that the
// store itself is gone (rank 0, which hosts it, died). A survivor that fails later than
// `window` after the first is still listed by the early ones, hence the wording. Returns
// within window + 5 s whatever the store does.
std::string dist_roll_call(c10::intrusive_ptr<c10d::Store> store, int rank, int world,
                           std::chrono::milliseconds window = std::chrono::seconds(3));

struct DistOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};  // CausVid: 1800 s
  // Bound on each start-up phase (store connect, rendezvous of all ranks, process-group
  // creation, first barrier); unset = env CAUSVID_STARTUP_TIMEOUT (seconds), else 300 s. The
  // effective bound is min(startup_timeout, timeout). On expiry the error names the phase, the
  // rank, the world size, the master address and, where known, the ranks that did not arrive.
  std::optional<std::chrono::milliseconds> startup_timeout;
  std::string backend = "auto";  // "auto" (nccl when `device` is CUDA) | "gloo" | "nccl"
  // The compute device chosen before the process group exists: "cpu", "cuda" (=
  // cuda:LOCAL_RANK) or "cuda:N"; "auto" = cuda when a GPU is visible, else cpu.
  std::string device = "cpu";
  // Ranks per shard group for hybrid sharding; 0 = local_world_size (one node).
  int shard_group_size = 0;
};

class DistContext {
 public:
  // Single process, no network.
  DistContext();
  // From a launcher environment (world size 1 -> no network either).
  static std::shared_ptr<DistContext> init(const DistEnv& env, const DistOptions& opts = {});
  static std::shared_ptr<DistContext> init_from_env(const DistOptions& opts = {});
  // Over an existing store (tests run ranks as threads sharing a c10d::HashStore).
  static std::shared_ptr<DistContext> init_with_store(c10::intrusive_ptr<c10d::Store> store,
                                                      const DistEnv& env,
                                                      const DistOptions& opts = {});

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  int local_rank() const { return env_.local_rank; }
  bool is_main() const { return env_.rank == 0; }
  const DistEnv& env() const { return env_; }
  const DistGroup& world() const { return world_; }
  // Hybrid sharding: shard group = ranks of one node (shard_group_size consecutive ranks);
  // replica group = ranks with the same position in every shard group.
  const DistGroup& shard_group() const { return shard_; }
  const DistGroup& replica_group() const { return replica_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  // The compute device of this rank (cuda:LOCAL_RANK for `device: cuda`).
  torch::Device device() const { return device_; }
  const std::string& backend() const { return backend_; }
  // A new group over a subset (all ranks must call with the same lists, in the same order);
  // returns a size-1 group view on ranks outside `ranks`.
  DistGroup new_group(const std::vector<int>& ranks, const std::string& name);

 private:
  void setup(c10::intrusive_ptr<c10d::Store> store, const DistOptions& opts);
  void create_groups(int shard_group_size);
  // Start-up phase 4 (core/dist_startup.cpp): one world barrier bounded by the start-up
  // timeout.
  void first_barrier();
  std::chrono::milliseconds startup_timeout_{std::chrono::minutes(5)};
  DistEnv env_;
  c10::intrusive_ptr<c10d::Store> store_;
  DistGroup world_, shard_, replica_;
  std::chrono::milliseconds timeout_{std::chrono::minutes(30)};
  std::string backend_ = "gloo";
  torch::Device device_ = torch::kCPU;
};

// The effective start-up bound of `opts` (see DistOptions::startup_timeout).
std::chrono::milliseconds startup_timeout(const DistOptions& opts);
// Start-up phases 1-2 (core/dist_startup.cpp): connects to (rank 0: hosts) the TCPStore at
// env.master_addr:master_port, then sets "startup/arrived/<rank>" and waits until every rank's
// key is there. Throws naming the phase, rank, world size, master and the missing ranks.
c10::intrusive_ptr<c10d::Store> startup_rendezvous(const DistEnv& env,
                                                   std::chrono::milliseconds timeout);
// "rank 1 of 2, master 127.0.0.1:29500": the context of every start-up error.
std::string startup_where(const DistEnv& env);

// CausVid's seed rule: seed 0 -> rank 0 draws a random seed and broadcasts it; returns the
// shared base seed (each rank then seeds its generators with base + rank).
int64_t resolve_seed(int64_t seed, const DistGroup& world);

// Call once before running several ranks as threads of one process (the tests, `bench fsdp`):
// turns off LibTorch 2.11's c10d flight recorder (TORCH_FR_BUFFER_SIZE=0, unless the
// variable is set), whose process-wide recorder crashed ~1 in 8 runs of the FSDP tests when
// thread-ranks issued Gloo collectives concurrently. One rank per process is not affected
// and keeps the recorder.
void prepare_thread_ranks();

// torch DistributedSampler: indices of `rank` for `epoch`. shuffle: randperm with a generator
// seeded seed + epoch; drop_last drops the tail so every rank gets floor(n / world) indices,
// otherwise the list is padded by wrapping to ceil(n / world) per rank; rank r takes r::world.
std::vector<int64_t> distributed_sampler_indices(int64_t n, int world, int rank, bool shuffle,
                                                 int64_t seed, int64_t epoch, bool drop_last);

#if defined(CAUSVID_WITH_NCCL)
// core/dist_cuda.cpp
c10::intrusive_ptr<c10d::Backend> make_nccl_group(c10::intrusive_ptr<c10d::Store> store,
                                                       int rank, int size,
                                                       std::chrono::milliseconds timeout,
                                                       int local_rank);
#endif

}  // namespace causvid::core
