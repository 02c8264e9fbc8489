// bench/benches.h: the benchmark functions `causvid bench NAME` dispatches to. Each prints
// ratios against a baseline measured in the same run and returns an exit code.
#pragma once

namespace causvid::bench {

int bench_t5(int argc, char** argv);  // bench/t5_bench.cpp: umT5 encoder time per prompt

}  // namespace causvid::bench
