// cli/bench_command.cpp: `causvid bench NAME ...`, the benchmarks of bench/ (bench/benches.h
// holds each one's settings; the flags and their defaults are registered here).
#include "bench/benches.h"
#include "cli/commands.h"

namespace causvid::cli {

namespace {

void add_dit_bench(Commands& cmds, CLI::App* bench) {
  auto a = std::make_shared<bench::DitBenchArgs>();
  CLI::App* app = cmds.add("dit", "Time the Wan DiT forward and forward+backward (random weights) and report achieved GFLOP/s against a GEMM roof measured in the same run.",
                           [a] { return bench::bench_dit(*a); }, bench);
  app->add_option("--preset", a->preset, "model preset (wan-1.3b, wan-14b, wan-mid, tiny, toy)");
  add_optional(*app, "--layers", a->layers, "override num_layers (e.g. 1 for one wan-1.3b block)");
  app->add_option("--frames", a->frames, "latent frames");
  app->add_option("--height", a->height, "latent height");
  app->add_option("--width", a->width, "latent width");
  app->add_option("--mode", a->mode, "bidirectional | causal (block-causal training mask)");
  app->add_option("--num-frame-per-block", a->num_frame_per_block, "frames per block for --mode causal");
  app->add_option("--dtypes", a->dtypes, "comma-separated: fp32, bf16");
  app->add_option("--reps", a->reps, "timed repetitions (median)");
  app->add_option("--backward", a->backward, "also time forward+backward (0/1)");
  app->add_option("--profile", a->profile, "write a chrome://tracing profile of one fp32 forward+backward to this file");
  app->add_option("--device", a->device, "cpu, cuda or cuda:N");
  app->add_option("--attention", a->attention, "attention kernels to time (comma list): sdpa, chunked");
  app->add_option("--reference", a->reference, "a CausVid checkout: also time its Python WanModel with the same shapes (bench/reference_dit.py) and print the speed-up against it");
  app->add_option("--python", a->python, "Python for --reference; '' = the pinned torch's (scripts/torch_env.sh)");
}

void add_fsdp_bench(Commands& cmds, CLI::App* bench) {
  auto a = std::make_shared<bench::FsdpBenchArgs>();
  CLI::App* app = cmds.add("fsdp", "Per-rank bytes at rest for W=1 and W=2 under each sharding strategy, and step time relative to no_shard (ranks as threads over Gloo loopback).",
                           [a] { return bench::bench_fsdp(*a); }, bench);
  app->add_option("--preset", a->preset, "model preset");
  app->add_option("--steps", a->steps, "timed steps per configuration (median)");
  app->add_flag("--mixed-precision", a->mixed_precision, "bf16 compute params");
  app->add_option("--rs-mb", a->rs_mb, "MiB of the reduce_scatter comparison");
  app->add_flag("--gather-all", a->gather_all, "strategy table: full / hybrid_full gather every unit for the whole step (the old mode) instead of per block");
  app->add_option("--only", a->only, "sections: all | strategies | gather | reduce_scatter")->check(CLI::IsMember({"all", "strategies", "gather", "reduce_scatter"}));
}

void add_generate_bench(Commands& cmds, CLI::App* bench) {
  auto a = std::make_shared<bench::GenerateBenchArgs>();
  CLI::App* app = cmds.add("generate", "Causal streaming generation: time to first frame, per-block latency with the full vs rolling KV cache, KV memory, FPS; --wan: one Wan2.1-1.3B block at real token count and the projected H100 FPS.",
                           [a] { return bench::bench_generate(*a); }, bench);
  app->add_option("--preset", a->preset, "model preset of the streaming part");
  app->add_option("--size", a->size, "latent height = width of the streaming part (toy world: 12)");
  app->add_option("--reps", a->reps, "runs per cache kind; per-block median reported");
  app->add_option("--threads", a->threads, "intra-op threads of the streaming part (tiny ops stall on a busy machine with more); 0 = keep");
  app->add_option("--blocks", a->blocks, "blocks generated per run");
  app->add_option("--num-frame-per-block", a->num_frame_per_block, "latent frames per block");
  app->add_option("--window-frames", a->window_frames, "rolling cache window (latent frames)");
  app->add_option("--sink-frames", a->sink_frames, "rolling cache sink frames");
  app->add_option("--steps", a->steps, "denoising steps per block (+1 cache-write pass)");
  app->add_flag("--wan", a->wan, "also time one Wan2.1-1.3B block at the real token count");
  app->add_option("--wan-layers", a->wan_layers, "layers of the 30 actually run (scaled to 30)");
  app->add_option("--h100-tflops", a->h100_tflops, "H100 SXM dense bf16 peak TFLOP/s assumed");
  app->add_option("--h100-mfu", a->h100_mfu, "fraction of the H100 peak assumed for the projection");
  app->add_option("--device", a->device, "cpu, cuda or cuda:N");
  app->add_option("--dtype", a->dtype, "weights and compute: fp32 or bf16");
  app->add_flag("--wan-stream", a->wan_stream, "stream a whole 81-frame video (7 blocks of 3 latent frames) with the full Wan2.1-1.3B: per-block latency and measured FPS (DiT only; meant for a GPU)");
}

void add_t5_bench(Commands& cmds, CLI::App* bench) {
  auto a = std::make_shared<bench::T5BenchArgs>();
  CLI::App* app = cmds.add("t5", "umT5 encoder: measured time per prompt (small config) and the XXL estimate from FLOPs and a measured GEMM rate.",
                           [a] { return bench::bench_t5(*a); }, bench);
  app->add_option("--dim", a->dim, "small config model dim (= dim_attn)");
  app->add_option("--dim-ffn", a->dim_ffn, "small config FFN dim");
  app->add_option("--heads", a->heads, "small config heads");
  app->add_option("--layers", a->layers, "small config layers");
  app->add_option("--text-len", a->text_len, "tokens per prompt (Wan: 512)");
  app->add_option("--valid", a->valid, "non-pad tokens per prompt");
  app->add_option("--batch", a->batch, "prompts per forward");
  app->add_option("--iters", a->iters, "timed iterations");
}

void add_train_bench(Commands& cmds, CLI::App* bench) {
  auto a = std::make_shared<bench::TrainBenchArgs>();
  CLI::App* app = cmds.add("train", "Seconds per training step of each stage through trainer::run_training on synthetic data (toy size by default), vs the GEMM roof.",
                           [a] { return bench::bench_train(*a); }, bench);
  app->add_option("--preset", a->preset, "model_preset of the DiT");
  app->add_option("--batch", a->batch, "batch size");
  app->add_option("--frames", a->frames, "latent frames");
  app->add_option("--size", a->size, "latent height = width");
  app->add_option("--steps", a->steps, "timed steps per stage (after 2 warm-up steps)");
  app->add_option("--stages", a->stages, "stages to time");
  app->add_option("--device", a->device, "cpu, cuda or cuda:N (the trainer's device)");
  app->add_flag("--mixed-precision", a->mixed_precision, "bf16 compute, fp32 master weights (mixed_precision)");
}

void add_video_bench(Commands& cmds, CLI::App* bench) {
  auto a = std::make_shared<bench::VideoBenchArgs>();
  CLI::App* app = cmds.add("video", "Video encode/decode throughput (frames/s) at 832x480 via libav*.",
                           [a] { return bench::bench_video(*a); }, bench);
  app->add_option("--frames", a->frames, "frames per clip (CausVid: 81 at 16 fps)");
  app->add_option("--width", a->width, "frame width");
  app->add_option("--height", a->height, "frame height");
  app->add_option("--reps", a->reps, "repetitions (best is reported)");
  app->add_option("--threads", a->threads, "codec threads (0 = libav's choice)");
  app->add_option("--dir", a->dir, "scratch directory (default: a temporary one)");
}

void add_vae_bench(Commands& cmds, CLI::App* bench) {
  auto a = std::make_shared<bench::VaeBenchArgs>();
  CLI::App* app = cmds.add("vae", "Wan2.1 VAE benchmark: real dims, random weights; time per frame and peak memory per size and dtype (each case in a child process).",
                           [a] { return bench::bench_vae(*a); }, bench);
  app->add_option("--sizes", a->sizes, "HxW list (multiples of 8): 480x832 is the 1.3B model's 81x480x832 video");
  app->add_option("--dtypes", a->dtypes, "dtypes to time (fp32, bf16)");
  app->add_option("--ops", a->ops, "which of encode,decode to run");
  app->add_option("--enc-frames", a->enc_frames, "pixel frames to encode (1+4k: first + k chunks)");
  app->add_option("--dec-latent", a->dec_latent, "latent frames to decode (1 -> 1, then 4 each)");
  app->add_option("--conv-size", a->conv_size, "HxW of the conv baseline; 'none' skips it");
  app->add_option("--reps", a->reps, "repetitions of the conv baseline");
  app->add_option("--child", a->child, "internal: run one case (encode|decode) and print RESULT");
  app->add_option("--child-dtype", a->child_dtype, "internal");
  app->add_option("--child-size", a->child_size, "internal");
  app->add_option("--child-n", a->child_n, "internal");
}

}  // namespace

void add_bench_commands(Commands& cmds) {
  CLI::App* bench = cmds.add_group("bench", "benchmarks (bench dit ...)");
  add_dit_bench(cmds, bench);
  add_fsdp_bench(cmds, bench);
  add_generate_bench(cmds, bench);
  add_t5_bench(cmds, bench);
  add_train_bench(cmds, bench);
  add_video_bench(cmds, bench);
  add_vae_bench(cmds, bench);
}

}  // namespace causvid::cli
