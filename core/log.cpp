// core/log.cpp: see log.h.
#include "core/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <set>
#include <sstream>

namespace causvid::core {
namespace {

int g_rank = 0;

LogLevel level_from_env() {
  const char* v = std::getenv("CAUSVID_LOG_LEVEL");
  if (!v) return LogLevel::kInfo;
  std::string s(v);
  if (s == "debug") return LogLevel::kDebug;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}

LogLevel& level_ref() {
  static LogLevel level = level_from_env();
  return level;
}

bool rank_allowed(int rank) {
  const char* v = std::getenv("LOG_RANKS");
  if (!v || !*v) return rank == 0;
  if (std::strcmp(v, "all") == 0) return true;
  std::stringstream ss(v);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (!tok.empty() && std::atoi(tok.c_str()) == rank) return true;
  }
  return false;
}

}  // namespace

void set_log_rank(int rank) { g_rank = rank; }
int log_rank() { return g_rank; }
void set_log_level(LogLevel level) { level_ref() = level; }

bool log_enabled(LogLevel level) {
  if (static_cast<int>(level) < static_cast<int>(level_ref())) return false;
  // Errors are always printed, whatever the rank.
  return level == LogLevel::kError || rank_allowed(g_rank);
}

void log_write(LogLevel level, const char* file, int line, const std::string& msg) {
  static std::mutex mu;
  static const char kLetters[] = {'D', 'I', 'W', 'E'};
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  const char* base = std::strrchr(file, '/');
  base = base ? base + 1 : file;
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "[cv] %02d:%02d:%02d %d %c %s:%d %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
               g_rank, kLetters[static_cast<int>(level)], base, line, msg.c_str());
}

}  // namespace causvid::core
