// core/dist_startup.cpp: the start-up of a multi-process run, bounded and named (issue #14).
// Four phases, each bounded by the start-up timeout (DistOptions::startup_timeout, env
// CAUSVID_STARTUP_TIMEOUT, default 300 s, never above the collective timeout):
//   1. store connect   rank 0 hosts the TCPStore at MASTER_ADDR:MASTER_PORT, the others
//                      connect to it (the client retries until the timeout);
//   2. rendezvous      each rank sets "startup/arrived/<rank>" and waits until all W keys are
//                      there; on expiry the missing ranks are listed;
//   3. process groups  world / shard / replica groups (Gloo connects its full mesh here);
//   4. first barrier   one all-reduce on the world group.
// Every error names the phase, the rank, the world size and the master address. CausVid's
// launch_distributed_job has one timeout (1800 s) for all of this; torch's TCPStore waits for
// its workers with no word on which are missing, which is what the rendezvous phase replaces
// (the store is created with waitWorkers = false).
#include <algorithm>
#include <cstdlib>
#include <future>
#include <sstream>
#include <thread>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "core/dist.h"
#include "core/log.h"

namespace causvid::core {
namespace {

using Ms = std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

double secs(Ms t) { return double(t.count()) / 1000.0; }
double secs_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The message without the C++ backtrace that c10::Error::what() appends.
std::string what_of(const std::exception& e) {
  const auto* ce = dynamic_cast<const c10::Error*>(&e);
  return ce ? ce->what_without_backtrace() : e.what();
}

std::string arrived_key(int r) { return "startup/arrived/" + std::to_string(r); }

std::string rank_list(const std::vector<int>& v) {
  std::ostringstream s;
  const size_t shown = std::min<size_t>(v.size(), 32);
  for (size_t i = 0; i < shown; ++i) s << (i ? "," : "") << v[i];
  if (shown < v.size()) s << ",... (" << v.size() << " in all)";
  return s.str();
}

// Ranks whose key `prefix<r>` is missing; nullopt when the store cannot be asked (rank 0,
// which hosts it, is gone).
std::optional<std::vector<int>> missing_ranks(c10d::Store& store, const std::string& prefix,
                                              int world) {
  try {
    std::vector<int> m;
    for (int r = 0; r < world; ++r)
      if (!store.check({prefix + std::to_string(r)})) m.push_back(r);
    return m;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

[[noreturn]] void startup_fail(const std::string& phase, const DistEnv& env, Clock::time_point t0,
                               Ms timeout, const std::string& what) {
  TORCH_CHECK(false, "dist start-up: phase '", phase, "' failed on ", startup_where(env), " after ",
              secs_since(t0), " s (start-up timeout ", secs(timeout),
              " s; CAUSVID_STARTUP_TIMEOUT sets it): ", what);
  std::abort();  // not reached
}

c10::intrusive_ptr<c10d::Store> connect_store(const DistEnv& env, Ms timeout) {
  c10d::TCPStoreOptions so;
  so.port = uint16_t(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = size_t(env.world_size);
  so.waitWorkers = false;  // phase 2 waits, and can say who is missing
  so.timeout = timeout;
  const auto t0 = Clock::now();
  try {
    return c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    startup_fail("store connect", env, t0, timeout,
                 std::string(env.rank == 0 ? "rank 0 could not host the store (port in use?)"
                                           : "could not reach the store hosted by rank 0 (did "
                                             "rank 0 start? is MASTER_ADDR/PORT right?)") +
                     ": " + what_of(e));
  }
}

}  // namespace

namespace {

std::string roll_call_body(c10d::Store& store, int rank, int world, Ms window) {
  const std::string key = "rollcall/";
  const auto t0 = Clock::now();
  int64_t n = 0;
  try {
    store.set(key + std::to_string(rank), std::vector<uint8_t>{'1'});
    n = store.add("rollcall/count", 1);
    // One request per poll, whatever the world size (as the start-up rendezvous).
    while (n < world && Clock::now() - t0 < window) {
      std::this_thread::sleep_for(Ms(50));
      n = store.add("rollcall/count", 0);
    }
  } catch (const std::exception&) {
    return "the store went away during the roll call: rank 0, which hosts it, died";
  }
  if (n >= world) return "every rank answered the roll call (one hung or timed out?)";
  const auto m = missing_ranks(store, key, world);  // once, at the end
  if (!m) return "the store went away during the roll call: rank 0, which hosts it, died";
  std::ostringstream s;
  s << (m->size() == 1 ? "rank " : "ranks ") << rank_list(*m) << " of " << world
    << " had not answered the roll call after " << secs(window)
    << " s (dead, stuck, or still busy elsewhere)";
  return s.str();
}

}  // namespace

std::string dist_roll_call(c10::intrusive_ptr<c10d::Store> store, int rank, int world,
                           Ms window) {
  // In a thread of its own: a store whose host is unreachable (no reset, just silence) would
  // block a socket read for the store's own timeout; the caller waits window + 5 s at most.
  auto result = std::make_shared<std::promise<std::string>>();
  auto answer = result->get_future();
  std::thread([store, rank, world, window, result] {
    result->set_value(roll_call_body(*store, rank, world, window));
  }).detach();
  if (answer.wait_for(window + Ms(5000)) == std::future_status::ready) return answer.get();
  return "the store did not answer the roll call: rank 0, which hosts it, is unreachable";
}

Ms startup_timeout(const DistOptions& opts) {
  Ms t = std::chrono::minutes(5);
  if (opts.startup_timeout) {
    t = *opts.startup_timeout;
  } else if (const char* e = std::getenv("CAUSVID_STARTUP_TIMEOUT"); e && *e) {
    char* end = nullptr;
    const double s = std::strtod(e, &end);
    TORCH_CHECK(end && *end == '\0' && s > 0, "CAUSVID_STARTUP_TIMEOUT: got '", e,
                "', want seconds > 0");
    t = Ms(int64_t(s * 1000));
  }
  TORCH_CHECK(t.count() > 0, "startup timeout: got ", secs(t), " s, want > 0");
  return std::min(t, opts.timeout);
}

std::string startup_where(const DistEnv& env) {
  std::ostringstream s;
  s << "rank " << env.rank << " of " << env.world_size << ", master " << env.master_addr << ":"
    << env.master_port;
  return s.str();
}

c10::intrusive_ptr<c10d::Store> startup_rendezvous(const DistEnv& env, Ms timeout) {
  auto store = connect_store(env, timeout);
  const auto t0 = Clock::now();
  const int W = env.world_size;
  try {
    store->set(arrived_key(env.rank), std::vector<uint8_t>{'1'});
    store->add("startup/arrived_count", 1);
  } catch (const std::exception& e) {
    startup_fail("rendezvous", env, t0, timeout,
                 std::string("the store (hosted by rank 0) went away: ") + what_of(e));
  }
  auto next_log = t0 + std::chrono::seconds(10);
  auto poll = Ms(10);
  while (true) {
    int64_t n = 0;
    try {
      n = store->add("startup/arrived_count", 0);  // one request, whatever the world size
    } catch (const std::exception& e) {
      startup_fail("rendezvous", env, t0, timeout,
                   std::string("the store went away (rank 0, which hosts it, died or gave "
                               "up): ") +
                       what_of(e));
    }
    if (n >= W) break;
    const auto now = Clock::now();
    if (now - t0 >= timeout || now >= next_log) {
      auto m = missing_ranks(*store, "startup/arrived/", W);
      const std::string who =
          m ? "ranks " + rank_list(*m) + " did not arrive" : "the store went away (rank 0 died?)";
      if (now - t0 >= timeout || !m)
        startup_fail("rendezvous (waiting for all ranks)", env, t0, timeout,
                     who + " (not started, died during start-up, or given another master)");
      LOG_WARN("dist start-up: %s waiting for ranks %s (%lld of %d arrived, %.0f s left)",
               startup_where(env).c_str(), rank_list(*m).c_str(), (long long)n, W,
               secs(timeout) - secs_since(t0));
      next_log = now + std::chrono::seconds(10);
    }
    std::this_thread::sleep_for(poll);
    poll = std::min(poll * 2, Ms(200));
  }
  return store;
}

void DistContext::create_groups(int S) {
  const int W = env_.world_size;
  const auto t0 = Clock::now();
  const std::string key = "startup/groups/";
  try {
    if (store_) store_->set(key + std::to_string(env_.rank), std::vector<uint8_t>{'1'});
    std::vector<int> all(W);
    for (int i = 0; i < W; ++i) all[i] = i;
    world_ = new_group(all, "world");
    // Shard groups: [k*S, (k+1)*S); replica groups: {j, j+S, j+2S, ...}.
    const int k = env_.rank / S, j = env_.rank % S;
    std::vector<int> sg, rg;
    for (int i = 0; i < S; ++i) sg.push_back(k * S + i);
    for (int i = 0; i < W / S; ++i) rg.push_back(i * S + j);
    shard_ = S == W ? world_ : new_group(sg, "shard" + std::to_string(k));
    replica_ = W / S == 1 ? DistGroup({}, 0, 1, timeout_, "replica", device_)
                          : new_group(rg, "replica" + std::to_string(j));
  } catch (const std::exception& e) {
    std::string who;
    if (store_) {
      auto m = missing_ranks(*store_, key, W);
      who = !m           ? "the store went away (rank 0 died?); "
            : m->empty() ? "all ranks began this phase (one may have died in it); "
                         : "ranks " + rank_list(*m) + " did not begin this phase; ";
    }
    startup_fail("process-group creation (backend " + backend_ + ")", env_, t0, startup_timeout_,
                 who + what_of(e));
  }
}

void DistContext::first_barrier() {
  const auto t0 = Clock::now();
  try {
    world_.with_timeout(startup_timeout_).barrier();
  } catch (const std::exception& e) {
    startup_fail("first barrier", env_, t0, startup_timeout_, what_of(e));
  }
  if (store_) store_->setTimeout(timeout_);  // start-up is over: the collective timeout
}

}  // namespace causvid::core
