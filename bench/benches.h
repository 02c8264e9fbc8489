// bench/benches.h: benchmark entry points reachable as `causvid bench NAME`. Each prints
// its measurements with ratios against a baseline measured in the same run.
#pragma once

namespace causvid::bench {

int bench_dit(int argc, char** argv);
int bench_video(int argc, char** argv);
int bench_t5(int argc, char** argv);  // bench/t5_bench.cpp: umT5 encoder time per prompt

}  // namespace causvid::bench
