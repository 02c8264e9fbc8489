// bench/benches.h: benchmark entry points, each behind `causvid bench NAME` (bench/bench_main.cpp
// dispatches on NAME and passes argv with argv[0] = "causvid bench NAME").
#pragma once

namespace causvid::bench {

// causvid bench vae: Wan2.1 VAE encode/decode time per frame (fp32, bf16) and peak memory,
// real dims with random weights (bench/vae_bench.cpp).
int bench_vae(int argc, char** argv);

}  // namespace causvid::bench
