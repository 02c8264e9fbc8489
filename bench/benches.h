// bench/benches.h: benchmark entry points reachable as `causvid bench NAME`. Each prints
// its measurements with ratios against a baseline measured in the same run.
#pragma once

namespace causvid::bench {

int bench_dit(int argc, char** argv);
int bench_fsdp(int argc, char** argv);  // bench/fsdp_bench.cpp

}  // namespace causvid::bench
