// bench/bench_main.cpp: `causvid bench NAME ...` dispatches to the benchmarks.
#include <cstdio>
#include <cstring>

#include "bench/benches.h"
#include "cli/commands.h"

namespace causvid::cli {

int bench_main(int argc, char** argv) {
  struct Entry {
    const char* name;
    int (*fn)(int, char**);
    const char* help;
  };
  static const Entry kBenches[] = {
      {"dit", bench::bench_dit, "Wan DiT forward / forward+backward vs the GEMM roof"},
      {"video", bench::bench_video, "video decode / encode throughput vs raw frame I/O"},
      {"vae", bench::bench_vae, "Wan VAE encode/decode time per frame and peak memory, fp32 vs bf16"},
      {"t5", bench::bench_t5, "umT5 encoder time per prompt vs the GEMM rate; XXL estimate"},
      {"train", bench::bench_train, "seconds per training step of each stage (toy size) vs the GEMM roof"},
      {"fsdp", bench::bench_fsdp, "sharded data parallel: per-rank bytes W=1/W=2, step time vs no_shard"},
      {"generate", bench::bench_generate, "streaming generation: TTFF, per-block latency full vs rolling cache, H100 FPS projection"},
  };
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::printf("usage: causvid bench NAME [options]   (causvid bench NAME --help)\n\nbenchmarks:\n");
    for (const auto& e : kBenches) std::printf("  %-10s %s\n", e.name, e.help);
    return argc < 2 ? 2 : 0;
  }
  for (const auto& e : kBenches) {
    if (std::strcmp(argv[1], e.name) != 0) continue;
    std::string prog = std::string("causvid bench ") + e.name;
    argv[1] = prog.data();
    return e.fn(argc - 1, argv + 1);
  }
  std::fprintf(stderr, "causvid bench: unknown benchmark '%s'\n", argv[1]);
  return 2;
}

}  // namespace causvid::cli
