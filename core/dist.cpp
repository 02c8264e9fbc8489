// core/dist.cpp: see dist.h.
#include "core/dist.h"

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <cstdlib>
#include <optional>
#include <random>

#include "core/log.h"
#include "core/runtime.h"

extern char** environ;

namespace causvid::core {
namespace {

int parse_int(const std::map<std::string, std::string>& env, const std::string& key,
              std::optional<int> dflt = std::nullopt) {
  auto it = env.find(key);
  if (it == env.end() || it->second.empty()) {
    TORCH_CHECK(dflt.has_value(), key, ": not set, want an integer (set by the launcher)");
    return *dflt;
  }
  const std::string& v = it->second;
  size_t pos = 0;
  long x = 0;
  try {
    x = std::stol(v, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  TORCH_CHECK(pos == v.size() && pos > 0, key, ": got '", v, "', want an integer");
  return int(x);
}

std::string get(const std::map<std::string, std::string>& env, const std::string& key,
                const std::string& dflt = "") {
  auto it = env.find(key);
  return it == env.end() || it->second.empty() ? dflt : it->second;
}

std::string strip_brackets(std::string a) {
  if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  return a;
}

// SLURM_TASKS_PER_NODE "4(x2),3" -> first count (4).
int first_tasks_per_node(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  TORCH_CHECK(i > 0, "SLURM_TASKS_PER_NODE: got '", s, "', want e.g. 4(x2)");
  return std::stoi(s.substr(0, i));
}

bool is_loopback(const std::string& a) {
  return a == "localhost" || a == "::1" || a.rfind("127.", 0) == 0;
}

}  // namespace

std::map<std::string, std::string> process_env() {
  std::map<std::string, std::string> m;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) m[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return m;
}

std::vector<std::string> expand_slurm_nodelist(const std::string& s) {
  // Split at top-level commas (not inside brackets).
  std::vector<std::string> parts;
  int depth = 0;
  std::string cur;
  for (char c : s) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    TORCH_CHECK(depth >= 0 && depth <= 1, "SLURM_JOB_NODELIST: unbalanced brackets in '", s, "'");
    if (c == ',' && depth == 0) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  TORCH_CHECK(depth == 0, "SLURM_JOB_NODELIST: unbalanced brackets in '", s, "'");
  if (!cur.empty()) parts.push_back(cur);
  std::vector<std::string> hosts;
  for (const auto& p : parts) {
    auto lb = p.find('[');
    if (lb == std::string::npos) {
      if (!p.empty()) hosts.push_back(p);
      continue;
    }
    auto rb = p.find(']', lb);
    TORCH_CHECK(rb != std::string::npos, "SLURM_JOB_NODELIST: bad group '", p, "'");
    std::string prefix = p.substr(0, lb), suffix = p.substr(rb + 1);
    std::string body = p.substr(lb + 1, rb - lb - 1);
    size_t start = 0;
    while (start <= body.size()) {
      auto comma = body.find(',', start);
      std::string r = body.substr(start, comma == std::string::npos ? std::string::npos
                                                                    : comma - start);
      auto dash = r.find('-');
      TORCH_CHECK(!r.empty(), "SLURM_JOB_NODELIST: empty range in '", p, "'");
      if (dash == std::string::npos) {
        hosts.push_back(prefix + r + suffix);
      } else {
        std::string a = r.substr(0, dash), b = r.substr(dash + 1);
        TORCH_CHECK(!a.empty() && !b.empty(), "SLURM_JOB_NODELIST: bad range '", r, "'");
        long lo = std::stol(a), hi = std::stol(b);
        TORCH_CHECK(lo <= hi, "SLURM_JOB_NODELIST: descending range '", r, "'");
        const size_t width = a.size();  // zero padding as written ("01")
        for (long v = lo; v <= hi; ++v) {
          std::string num = std::to_string(v);
          if (num.size() < width) num = std::string(width - num.size(), '0') + num;
          hosts.push_back(prefix + num + suffix);
        }
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return hosts;
}

DistEnv parse_dist_env(const std::map<std::string, std::string>& env) {
  DistEnv d;
  auto has = [&](const char* k) { return !get(env, k).empty(); };
  if (has("RANK") && has("WORLD_SIZE")) {
    d.launcher = "torchrun";
    d.rank = parse_int(env, "RANK");
    d.world_size = parse_int(env, "WORLD_SIZE");
    d.local_rank = parse_int(env, "LOCAL_RANK", d.rank);
    d.local_world_size = parse_int(env, "LOCAL_WORLD_SIZE", d.world_size);
    d.node_rank = parse_int(env, "GROUP_RANK", d.rank / std::max(1, d.local_world_size));
    d.master_addr = get(env, "MASTER_ADDR", "127.0.0.1");
    d.master_port = parse_int(env, "MASTER_PORT", 29500);
  } else if (has("SLURM_PROCID") && has("SLURM_NTASKS")) {
    d.launcher = "slurm";
    d.rank = parse_int(env, "SLURM_PROCID");
    d.world_size = parse_int(env, "SLURM_NTASKS");
    d.local_rank = parse_int(env, "SLURM_LOCALID", 0);
    d.node_rank = parse_int(env, "SLURM_NODEID", 0);
    if (has("SLURM_NTASKS_PER_NODE"))
      d.local_world_size = parse_int(env, "SLURM_NTASKS_PER_NODE");
    else if (has("SLURM_TASKS_PER_NODE"))
      d.local_world_size = first_tasks_per_node(get(env, "SLURM_TASKS_PER_NODE"));
    else
      d.local_world_size = d.world_size;
    if (has("MASTER_ADDR")) {
      d.master_addr = get(env, "MASTER_ADDR");
    } else {
      std::string nl = get(env, "SLURM_JOB_NODELIST", get(env, "SLURM_NODELIST"));
      TORCH_CHECK(!nl.empty(), "SLURM_JOB_NODELIST: not set and MASTER_ADDR not set, want one");
      auto hosts = expand_slurm_nodelist(nl);
      TORCH_CHECK(!hosts.empty(), "SLURM_JOB_NODELIST: no hosts in '", nl, "'");
      d.master_addr = hosts[0];
    }
    d.master_port = parse_int(env, "MASTER_PORT", 29500);
  } else if (has("OMPI_COMM_WORLD_RANK") && has("OMPI_COMM_WORLD_SIZE")) {
    d.launcher = "mpi";
    d.rank = parse_int(env, "OMPI_COMM_WORLD_RANK");
    d.world_size = parse_int(env, "OMPI_COMM_WORLD_SIZE");
    d.local_rank = parse_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0);
    d.local_world_size = parse_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", d.world_size);
    d.node_rank = d.rank / std::max(1, d.local_world_size);
    d.master_addr = get(env, "MASTER_ADDR", "127.0.0.1");
    TORCH_CHECK(d.world_size == 1 || has("MASTER_ADDR"),
                "MASTER_ADDR: not set, want the address of rank 0 (mpirun -x MASTER_ADDR=...)");
    d.master_port = parse_int(env, "MASTER_PORT", 29500);
  } else {
    return d;  // single process
  }
  d.master_addr = strip_brackets(d.master_addr);
  TORCH_CHECK(d.world_size >= 1, "WORLD_SIZE: got ", d.world_size, ", want >= 1");
  TORCH_CHECK(d.rank >= 0 && d.rank < d.world_size, "RANK: got ", d.rank, ", want 0..",
              d.world_size - 1);
  TORCH_CHECK(d.local_world_size >= 1 && d.world_size % d.local_world_size == 0,
              "LOCAL_WORLD_SIZE: got ", d.local_world_size, ", want a divisor of world size ",
              d.world_size);
  TORCH_CHECK(d.local_rank >= 0 && d.local_rank < d.local_world_size, "LOCAL_RANK: got ",
              d.local_rank, ", want 0..", d.local_world_size - 1);
  TORCH_CHECK(d.master_port > 0 && d.master_port < 65536, "MASTER_PORT: got ", d.master_port,
              ", want 1..65535");
  d.num_nodes = d.world_size / d.local_world_size;
  return d;
}

// ------------------------------------------------------------------------------ DistGroup

DistGroup::DistGroup(c10::intrusive_ptr<c10d::Backend> pg, int rank, int size,
                     std::chrono::milliseconds timeout, std::string name, torch::Device device)
    : pg_(std::move(pg)),
      rank_(rank),
      size_(size),
      device_(device),
      timeout_(timeout),
      name_(std::move(name)) {}

void DistGroup::set_roll_call(c10::intrusive_ptr<c10d::Store> store, int world_rank,
                              int world_size) {
  store_ = std::move(store);
  world_rank_ = world_rank;
  world_size_ = world_size;
}

void DistGroup::wait(c10::intrusive_ptr<c10d::Work>& w, const char* what) const {
  try {
    w->wait(timeout_);
  } catch (const std::exception& e) {
    const std::string who = store_ ? dist_roll_call(store_, world_rank_, world_size_) : "";
    TORCH_CHECK(false, "dist: ", what, " in group '", name_, "' (rank ", rank_, " of ", size_,
                ") failed: ", who.empty() ? "" : who + "; ",
                "a peer rank died, hung or timed out (timeout ", timeout_.count() / 1000.0,
                " s): ", e.what());
  }
}

void DistGroup::all_reduce(torch::Tensor& t, const std::string& op) const {
  TORCH_CHECK(op == "sum" || op == "avg" || op == "max", "all_reduce op: got ", op,
              ", want sum|avg|max");
  if (size_ == 1) return;
  TORCH_CHECK(t.is_contiguous(), "all_reduce: tensor must be contiguous");
  std::vector<torch::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = op == "max" ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
  o.timeout = timeout_;
  auto w = pg_->allreduce(v, o);
  wait(w, "all_reduce");
  if (op == "avg") t.div_(size_);
}

void DistGroup::broadcast(torch::Tensor& t, int root) const {
  if (size_ == 1) return;
  std::vector<torch::Tensor> v{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.timeout = timeout_;
  auto w = pg_->broadcast(v, o);
  wait(w, "broadcast");
}

void DistGroup::all_gather_into(torch::Tensor& out, const torch::Tensor& in) const {
  TORCH_CHECK(out.numel() == in.numel() * size_ && out.is_contiguous(),
              "all_gather: output has ", out.numel(), " elements, want ", in.numel() * size_);
  if (size_ == 1) {
    out.copy_(in.view_as(out));
    return;
  }
  auto src = in.contiguous().view({in.numel()});
  c10d::AllgatherOptions o;
  o.timeout = timeout_;
  auto w = pg_->_allgather_base(out, src, o);
  wait(w, "all_gather");
}

torch::Tensor DistGroup::all_gather(const torch::Tensor& in) const {
  auto out = torch::empty({in.numel() * size_}, in.options());
  all_gather_into(out, in);
  return out;
}

torch::Tensor DistGroup::reduce_scatter(const torch::Tensor& in) const {
  TORCH_CHECK(in.dim() == 1 && in.numel() % size_ == 0, "reduce_scatter: input of ",
              in.numel(), " elements is not divisible by group size ", size_);
  const int64_t n = in.numel() / size_;
  if (size_ == 1) return in.clone();
  auto algo = reduce_scatter_algo;
  if (algo == ReduceScatterAlgo::kAuto)
    algo = pg_->getBackendName() == "nccl" ? ReduceScatterAlgo::kBackend
                                           : ReduceScatterAlgo::kAllToAll;
  if (algo == ReduceScatterAlgo::kBackend) {
    auto out = torch::empty({n}, in.options());
    auto src = in.contiguous();
    c10d::ReduceScatterOptions o;
    o.timeout = timeout_;
    auto w = pg_->_reduce_scatter_base(out, src, o);
    wait(w, "reduce_scatter");
    return out;
  }
  auto src = in.contiguous();
  if (algo == ReduceScatterAlgo::kAllReduce) {
    auto tmp = src.clone();
    all_reduce(tmp, "sum");
    return tmp.narrow(0, int64_t(rank_) * n, n).clone();
  }
  auto out = torch::empty_like(src);
  std::vector<int64_t> splits;  // empty = equal splits
  c10d::AllToAllOptions o;
  o.timeout = timeout_;
  auto w = pg_->alltoall_base(out, src, splits, splits, o);
  wait(w, "reduce_scatter(all_to_all)");
  return out.view({size_, n}).sum(0);
}

std::vector<int64_t> DistGroup::sum(const std::vector<int64_t>& counts) const {
  if (size_ == 1 || counts.empty()) return counts;
  auto t = torch::tensor(counts, torch::kLong).to(device_);
  all_reduce(t, "sum");
  t = t.cpu();
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

DistGroup DistGroup::with_timeout(std::chrono::milliseconds timeout) const {
  DistGroup g = *this;
  g.timeout_ = timeout;
  return g;
}

void DistGroup::barrier() const {
  if (size_ == 1) return;
  // An all-reduce of one element: Gloo's barrier ignores the timeout in some versions.
  auto t = torch::zeros({1}, torch::TensorOptions().device(device_));
  all_reduce(t, "sum");
}

// ------------------------------------------------------------------------------ DistContext

DistContext::DistContext() = default;

namespace {

c10::intrusive_ptr<c10d::Backend> make_gloo(c10::intrusive_ptr<c10d::Store> store, int rank,
                                                 int size, std::chrono::milliseconds timeout,
                                                 const std::string& master_addr) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifname && *ifname) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  } else if (is_loopback(master_addr)) {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(master_addr));
  } else {
    opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
}

}  // namespace

DistGroup DistContext::new_group(const std::vector<int>& ranks, const std::string& name) {
  auto it = std::find(ranks.begin(), ranks.end(), env_.rank);
  if (it == ranks.end() || ranks.size() == 1 || !store_)
    return DistGroup({}, 0, 1, timeout_, name, device_);
  const int r = int(it - ranks.begin()), n = int(ranks.size());
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("group/" + name, store_);
  c10::intrusive_ptr<c10d::Backend> pg;
#if defined(CAUSVID_WITH_NCCL)
  if (backend_ == "nccl") pg = make_nccl_group(prefixed, r, n, timeout_, device_.index());
#endif
  if (!pg) {
    // Gloo connects its full mesh in the constructor: bounded by the start-up timeout, then
    // the collective timeout for everything after.
    pg = make_gloo(prefixed, r, n, std::min(startup_timeout_, timeout_), env_.master_addr);
    pg->setTimeout(timeout_);
  }
  DistGroup g(pg, r, n, timeout_, name, device_);
  g.set_roll_call(store_, env_.rank, env_.world_size);
  return g;
}

void DistContext::setup(c10::intrusive_ptr<c10d::Store> store, const DistOptions& opts) {
  timeout_ = opts.timeout;
  startup_timeout_ = startup_timeout(opts);
  store_ = store;
  device_ = resolve_device(opts.device, env_.local_rank, env_.local_world_size);
  backend_ = opts.backend == "auto" ? (device_.is_cuda() ? "nccl" : "gloo") : opts.backend;
  TORCH_CHECK(backend_ == "gloo" || backend_ == "nccl", "backend: got '", opts.backend,
              "', want auto|gloo|nccl");
  TORCH_CHECK(backend_ == "gloo" || device_.is_cuda(), "backend: nccl needs a CUDA device, but "
              "device is ", device_.str());
  TORCH_CHECK(backend_ == "nccl" || !device_.is_cuda() || env_.world_size == 1,
              "backend: gloo was asked for with device ", device_.str(),
              "; collectives would get CUDA tensors (use backend auto or nccl)");
#if !defined(CAUSVID_WITH_NCCL)
  TORCH_CHECK(backend_ == "gloo", "backend: nccl needs a CUDA LibTorch build");
#endif
  const int W = env_.world_size;
  int S = opts.shard_group_size > 0 ? opts.shard_group_size : env_.local_world_size;
  TORCH_CHECK(S >= 1 && W % S == 0, "shard_group_size: got ", S, ", want a divisor of world size ",
              W);
  if (W == 1) {
    world_ = shard_ = replica_ = DistGroup({}, 0, 1, timeout_, "world", device_);
    return;
  }
  create_groups(S);  // start-up phases 3 and 4: core/dist_startup.cpp
  first_barrier();
  LOG_INFO("dist: rank %d/%d (local %d/%d, node %d/%d) backend %s, shard group %d, replica group "
           "%d, master %s:%d",
           env_.rank, W, env_.local_rank, env_.local_world_size, env_.node_rank, env_.num_nodes,
           backend_.c_str(), shard_.size(), replica_.size(), env_.master_addr.c_str(),
           env_.master_port);
}

std::shared_ptr<DistContext> DistContext::init_with_store(c10::intrusive_ptr<c10d::Store> store,
                                                          const DistEnv& env,
                                                          const DistOptions& opts) {
  auto ctx = std::make_shared<DistContext>();
  ctx->env_ = env;
  ctx->setup(std::move(store), opts);
  return ctx;
}

std::shared_ptr<DistContext> DistContext::init(const DistEnv& env, const DistOptions& opts) {
  set_log_rank(env.rank);  // one process per rank here (tests with thread ranks skip this)
  if (env.world_size == 1) return init_with_store({}, env, opts);
  auto store = startup_rendezvous(env, startup_timeout(opts));  // phases 1 and 2
  return init_with_store(store, env, opts);
}

std::shared_ptr<DistContext> DistContext::init_from_env(const DistOptions& opts) {
  return init(parse_dist_env(process_env()), opts);
}

void prepare_thread_ranks() { ::setenv("TORCH_FR_BUFFER_SIZE", "0", /*overwrite=*/0); }

int64_t resolve_seed(int64_t seed, const DistGroup& world) {
  if (seed != 0) return seed;
  auto t = torch::zeros({1}, torch::kInt64);
  if (world.rank() == 0) {
    std::random_device rd;
    t[0] = int64_t(rd() % 10000000) + 1;  // CausVid: random.randint(0, 10000000)
  }
  t = t.to(world.device());
  world.broadcast(t, 0);
  return t.cpu().item<int64_t>();
}

std::vector<int64_t> distributed_sampler_indices(int64_t n, int world, int rank, bool shuffle,
                                                 int64_t seed, int64_t epoch, bool drop_last) {
  TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "sampler: rank ", rank, " of ", world);
  std::vector<int64_t> idx(n);
  if (shuffle) {
    auto gen = at::detail::createCPUGenerator(uint64_t(seed + epoch));
    auto p = torch::randperm(n, gen, torch::kInt64);
    auto a = p.accessor<int64_t, 1>();
    for (int64_t i = 0; i < n; ++i) idx[i] = a[i];
  } else {
    for (int64_t i = 0; i < n; ++i) idx[i] = i;
  }
  int64_t per;
  if (drop_last && n % world != 0) {
    per = n / world;
  } else {
    per = (n + world - 1) / world;
  }
  const int64_t total = per * world;
  if (total <= n) {
    idx.resize(total);
  } else {
    const int64_t pad = total - n;
    for (int64_t i = 0; i < pad; ++i) idx.push_back(idx[i % n]);
  }
  std::vector<int64_t> out;
  for (int64_t i = rank; i < total; i += world) out.push_back(idx[i]);
  return out;
}

}  // namespace causvid::core
