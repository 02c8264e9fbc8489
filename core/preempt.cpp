// core/preempt.cpp: see preempt.h.
#include "core/preempt.h"

#include <atomic>
#include <chrono>
#include <csignal>

namespace causvid::core {
namespace {

volatile std::sig_atomic_t g_signal = 0;
std::atomic<int64_t> g_since_ns{0};  // steady-clock time of the first request; 0 = none

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Async-signal-safe: a sig_atomic_t store and a lock-free atomic.
extern "C" void on_stop_signal(int sig) {
  if (g_signal == 0) {
    g_signal = sig;
    g_since_ns.store(now_ns(), std::memory_order_relaxed);
  }
}

}  // namespace

void install_stop_signals() {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGUSR1, &sa, nullptr);
    return true;
  }();
  (void)installed;
}

int stop_signal() { return g_signal; }

void clear_stop_request() {
  g_signal = 0;
  g_since_ns.store(0);
}

double seconds_since_stop_request() {
  const int64_t t = g_since_ns.load(std::memory_order_relaxed);
  return t == 0 ? 0.0 : (now_ns() - t) * 1e-9;
}

}  // namespace causvid::core
