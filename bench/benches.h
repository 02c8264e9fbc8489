// bench/benches.h: the benchmark entry points, one line each; `causvid bench NAME` calls
// bench_NAME(argc, argv). Each prints its figures and ratios against a baseline measured in
// the same run.
#pragma once

namespace causvid::bench {

int bench_video(int argc, char** argv);  // bench/video_bench.cpp

}  // namespace causvid::bench
