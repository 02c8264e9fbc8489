// bench/benches.h: benchmark entry points reachable as `causvid bench NAME`. Each prints
// its measurements with ratios against a baseline measured in the same run.
#pragma once

namespace causvid::bench {

int bench_dit(int argc, char** argv);
int bench_video(int argc, char** argv);
int bench_t5(int argc, char** argv);  // bench/t5_bench.cpp: umT5 encoder time per prompt
// causvid bench vae: Wan2.1 VAE encode/decode time per frame (fp32, bf16) and peak memory,
// real dims with random weights (bench/vae_bench.cpp).
int bench_vae(int argc, char** argv);
int bench_fsdp(int argc, char** argv);  // bench/fsdp_bench.cpp
int bench_train(int argc, char** argv);  // bench/train_bench.cpp: s/step of each stage
int bench_generate(int argc, char** argv);  // bench/generate_bench.cpp

}  // namespace causvid::bench
