// core/log.h: leveled, rank-aware logging to stderr.
// Prefix "[cv] HH:MM:SS rank L file:line". Arguments are not evaluated below the level
// (llama.cpp's LOG macros). Only rank 0 logs unless LOG_RANKS lists others ("0,3" or "all").
// Format strings are absl::StrFormat's.
#pragma once

#include <absl/strings/str_format.h>

#include <string>

namespace causvid::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Sets the process rank used in the prefix and by the LOG_RANKS filter.
void set_log_rank(int rank);
int log_rank();
// Threshold from CAUSVID_LOG_LEVEL (debug|info|warn|error), default info.
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
void log_write(LogLevel level, const char* file, int line, const std::string& msg);

}  // namespace causvid::core

#define CV_LOG_AT(lvl, ...)                                                              \
  do {                                                                                   \
    if (::causvid::core::log_enabled(lvl))                                               \
      ::causvid::core::log_write(lvl, __FILE__, __LINE__, absl::StrFormat(__VA_ARGS__)); \
  } while (0)
#define LOG_DEBUG(...) CV_LOG_AT(::causvid::core::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) CV_LOG_AT(::causvid::core::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) CV_LOG_AT(::causvid::core::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) CV_LOG_AT(::causvid::core::LogLevel::kError, __VA_ARGS__)
