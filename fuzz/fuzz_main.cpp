// fuzz/fuzz_main.cpp: the libFuzzer entry points of `causvid_fuzz` (built only by the fuzz
// build, clang -fsanitize=fuzzer,address,undefined; docs/fuzzing.md). The harness is chosen
// by CAUSVID_FUZZ_TARGET (see fuzz/harness.h for the list).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/log.h"
#include "fuzz/harness.h"

namespace {
const causvid::fuzz::Harness* g_harness = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* name = std::getenv("CAUSVID_FUZZ_TARGET");
  g_harness = name ? causvid::fuzz::find_harness(name) : nullptr;
  if (!g_harness) {
    std::fprintf(stderr, "causvid_fuzz: set CAUSVID_FUZZ_TARGET to one of:\n");
    for (const auto& h : causvid::fuzz::harnesses())
      std::fprintf(stderr, "  %-18s %s\n", h.name, h.what);
    std::exit(2);
  }
  causvid::core::set_log_level(causvid::core::LogLevel::kError);  // parsers may warn per input
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_harness->run(data, size);
  return 0;
}
