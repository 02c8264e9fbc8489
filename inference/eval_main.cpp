// inference/eval_main.cpp: `causvid eval NAME ...` dispatches to the evaluations.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"

namespace causvid::cli {

int eval_vbench_main(int argc, char** argv);  // inference/eval_vbench_main.cpp

int eval_main(int argc, char** argv) {
  struct Entry {
    const char* name;
    int (*fn)(int, char**);
    const char* help;
  };
  static const Entry kEvals[] = {
      {"vbench", eval_vbench_main,
       "generate VBench prompt-list videos (<prompt>-<i>.mp4) + C++ metrics (temporal flickering)"},
      {"toy", eval_toy_main, "the CPU toy world's metric (real data, a latent file or a checkpoint)"},
  };
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::printf("usage: causvid eval NAME [options]   (causvid eval NAME --help)\n\nevaluations:\n");
    for (const auto& e : kEvals) std::printf("  %-10s %s\n", e.name, e.help);
    return argc < 2 ? 2 : 0;
  }
  for (const auto& e : kEvals) {
    if (std::strcmp(argv[1], e.name) != 0) continue;
    std::string prog = std::string("causvid eval ") + e.name;
    argv[1] = prog.data();
    return e.fn(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "causvid eval: unknown evaluation '%s'\n", argv[1]);
  return 2;
}

}  // namespace causvid::cli
