// tests/core/dist_util.h: runs N ranks as threads sharing a c10d::HashStore (Gloo over
// loopback), so multi-rank tests need no launcher and no ports.
#pragma once

#include <gtest/gtest.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "core/dist.h"

namespace causvid::testing {

// fn(ctx) runs on every rank; the first exception of any rank is rethrown here.
inline void run_ranks(int world, const std::function<void(std::shared_ptr<core::DistContext>)>& fn,
                      int local_world = 0, std::chrono::milliseconds timeout =
                                               std::chrono::milliseconds(20000)) {
  auto store = c10::make_intrusive<c10d::HashStore>();
  std::vector<std::thread> threads;
  std::mutex mu;
  std::exception_ptr err;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        core::DistEnv env;
        env.launcher = "test";
        env.rank = r;
        env.world_size = world;
        env.local_world_size = local_world > 0 ? local_world : world;
        env.local_rank = r % env.local_world_size;
        env.node_rank = r / env.local_world_size;
        env.num_nodes = world / env.local_world_size;
        core::DistOptions o;
        o.timeout = timeout;
        auto ctx = core::DistContext::init_with_store(store, env, o);
        fn(ctx);
      } catch (...) {
        std::lock_guard<std::mutex> g(mu);
        if (!err) err = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (err) std::rethrow_exception(err);
}

}  // namespace causvid::testing
