// inference/generate.h: the library behind `causvid generate` (and `causvid eval vbench`):
// text -> latents -> pixels -> mp4, for the causal student (autoregressive, KV cache,
// streaming), the bidirectional student (few-step) and the teacher (many-step with CFG).
//
// Ports, and how they map onto GenerateOptions / SampleSpec:
//   - causvid/models/wan/causal_inference.py InferencePipeline.inference and
//     minimal_inference/autoregressive_inference.py: mode "causal" (CausalPipeline does the
//     per-block few-step loop + timestep-0 cache write); the denoising_step_list of the
//     config loses its trailing 0 and is warped when warp_denoising_step (as the reference).
//   - minimal_inference/longvideo_autoregressive_inference.py: num_rollout > 1. Each rollout
//     generates num_frames latent frames; the pixel frame at -(4(K-1)+1) is re-encoded by
//     the VAE (a 1-frame latent) and, with the last K-1 latents, becomes the start latents
//     (clean context blocks) of the next rollout; every rollout drops its last 4(K-1)+1
//     pixel frames (the next one regenerates them), the last one included, as the script.
//   - causvid/models/wan/causal_inference_i2v.py + minimal_inference/
//     i2v_autoregressive_inference.py: SampleSpec::image. The image latent is written into
//     the cache at frame 0 as clean context and is output frame 0; generated blocks start at
//     latent frame 1.
//   - causvid/models/wan/bidirectional_inference.py: mode "bidirectional" (few-step with
//     re-noising); generate_ode_pairs.py's teacher sampler: mode "teacher" (Euler with CFG,
//     negative prompt = the config's negative_prompt).
// Additions without a reference script (documented in docs/generate.md): the rolling KV
// cache (window + sink frames), SDEdit-style video-to-video, a dynamic prompt schedule,
// streaming mp4 + raw frames, and a latent preview mode for models without a VAE.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "models/t5/text_conditioner.h"
#include "models/vae/wan_vae.h"
#include "models/wan/wan_model.h"

namespace causvid::inference {

// ------------------------------------------------------------------ prompt schedule
// One line "<start>: <prompt>", start an integer block index ("0", "4") or seconds of
// output video ("2.5s"). Blank lines and lines starting with '#' are skipped.
struct ScheduleEntry {
  double start = 0;
  bool seconds = false;
  std::string prompt;
  int line = 0;  // 1-based line in the source
};
// Throws "<source>:<line>: ..." for an unparsable line, an empty prompt, a negative or
// non-increasing start, or a first entry not at 0.
std::vector<ScheduleEntry> parse_prompt_schedule(const std::string& text, const std::string& source);
std::vector<ScheduleEntry> read_prompt_schedule(const std::string& path);

// A schedule resolved to generated blocks: the prompt that conditions block >= start_block.
struct PromptSegment {
  int64_t start_block = 0;
  std::string prompt;
};
// Seconds -> pixel frame round(s * fps) -> latent frame ceil(p / temporal_stride), which
// must start a block (a time inside a block is an error naming the block starts around
// it). Two entries landing on the same block are an error naming both lines, and so is an
// entry at or past total_blocks (>= 0: the video's length in blocks), which would never be used.
std::vector<PromptSegment> resolve_schedule(const std::vector<ScheduleEntry>& entries,
                                            double fps, int64_t temporal_stride,
                                            int64_t num_frame_per_block,
                                            const std::string& source, int64_t total_blocks = -1);

// ------------------------------------------------------------------ small helpers
// A safe file-name stem for a prompt: ASCII letters, digits, '-' and '_' kept, runs of
// anything else (spaces, '.', '/', non-ASCII) become one '_', at most max_len bytes, never
// empty, never starting with '-' or '_'. "A cat, on a mat!" -> "A_cat_on_a_mat".
std::string safe_filename(const std::string& prompt, size_t max_len = 80);

// Latent preview for models without a VAE (toy world, tiny tests): a fixed linear
// latent -> RGB map (channel i feeds colour i % 3, each colour averaging its channels),
// tanh-squashed to [-1,1], nearest-upsampled by `scale`. [F,C,h,w] -> [F,3,h*s,w*s].
torch::Tensor latent_preview(const torch::Tensor& latents_FCHW, int64_t scale);

// A deterministic stand-in text encoder for tests and the toy world (registered as "hash":
// text_encoder_path or --text-encoder hash): each prompt maps to N(0,1) rows seeded by a 64-bit FNV-1a hash of the prompt,
// the first min(text_len, 1 + #words) rows non-zero (like a padded umT5 output).
class HashTextConditioner : public models::TextConditioner {
 public:
  HashTextConditioner(int64_t text_len, int64_t dim) : text_len_(text_len), dim_(dim) {}
  torch::Tensor encode(const std::vector<std::string>& prompts) override;
  int64_t text_len() const override { return text_len_; }
  int64_t dim() const override { return dim_; }
  torch::ScalarType output_dtype() const override { return torch::kFloat32; }

 private:
  int64_t text_len_, dim_;
};

// Registers this layer's named parts: the text encoder "hash" (HashTextConditioner, sized
// by TextConditionerOptions::text_len / text_dim). Called once at startup by the causvid
// main and the test main.
void register_builtins();

// Loads generator weights through models::load_wan_weights (plain WanModel keys, CausVid's
// model.pt with `which` = "generator" | "generator_ema" | "critic", or a training
// checkpoint directory holding model.pt), plus Wan2.1's model folder
// (diffusion_pytorch_model.safetensors, the teacher). Strict; errors name --checkpoint.
void load_generator_weights(models::WanModel& model, const std::string& path,
                            const std::string& which = "generator");

// A Wan VAE from a weight file (Wan2.1_VAE.pth or a safetensors with its keys). dim and
// z_dim are read from the weights (conv1 / conv2 shapes) so small test VAEs load too; the
// latent mean/std are Wan2.1's for z_dim 16, else tensors "latent_mean"/"latent_std" in
// the file, else 0/1.
std::unique_ptr<models::WanVAEWrapper> load_vae(const std::string& path);

// ------------------------------------------------------------------ the generator
struct GenerateOptions {
  std::string mode = "causal";         // "causal" | "bidirectional" | "teacher"
  // Where the DiT, VAE and KV cache run, and the dtype of their weights (bf16 halves memory
  // and uses the tensor cores on CUDA). Noise comes from CPU generators (core/random.h), so
  // a seed gives the same noise on every device.
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;
  int64_t num_frames = 21;             // latent frames generated per rollout (i2v adds 1)
  int64_t latent_height = 60, latent_width = 104;
  std::vector<double> denoising_steps = {1000, 757, 522};  // effective (warped) timesteps
  int64_t num_frame_per_block = 3;
  double timestep_shift = 8.0;  // the wrapper's grid; generate sets the config's scheduler_shift
  // Rolling KV cache: window in latent frames (< 0: plain cache) and sink frames.
  int64_t window_frames = -1, sink_frames = 0;
  // At a prompt switch of the schedule: false = refresh the cross-attention cache only (the
  // cached keys/values of the past frames stay those computed under the old prompt: cheap,
  // the new prompt takes over gradually); true = KV re-cache (LongLive): the frames in the
  // attention window (and the sink) are re-run under the new prompt, so the next block sees
  // a past encoded with the new prompt: a smooth but prompt-consistent switch, at the cost of
  // one forward over those frames per switch.
  bool recache = false;
  // Long video (CausVid's rollout): rollouts and overlap latent frames K.
  int64_t num_rollout = 1, num_overlap_frames = 3;
  // Teacher sampling.
  int64_t teacher_steps = 50;
  double guidance_scale = 3.5;
  std::string negative_prompt;
  // Video-to-video: the timestep the input latents are noised to (SDEdit strength).
  double v2v_timestep = 757;
  // Output.
  double fps = 16;
  bool stream = true;       // fragmented mp4 valid after every block, else temp + rename
  int64_t preview_scale = 8;  // latent preview upsampling (no VAE)
  bool resize_image = false;  // i2v: resize a differently sized image instead of failing
  bool quiet = false;         // no progress bar / per-block lines
  std::string codec = "libx264";
  // Called after each block's frames are written: (block index, pixel frames written so
  // far). The streamed mp4 is a valid file holding exactly those frames at that moment.
  std::function<void(int64_t, int64_t)> on_block;
};

struct SampleSpec {
  std::string prompt;                   // used when schedule is empty
  std::vector<ScheduleEntry> schedule;  // dynamic prompting
  std::string schedule_source;          // file name for messages
  int64_t seed = 0;
  std::string out_path;     // mp4 ("" = none)
  std::string raw_path;     // --stream-raw ("" = none, "-" = stdout)
  std::string latents_out;  // safetensors with "latents" [F,C,h,w] ("" = none)
  std::string image;        // i2v input
  std::string video;        // v2v input
};

struct SampleResult {
  torch::Tensor latents;  // [F,C,h,w] of the written video (rollouts concatenated)
  int64_t pixel_frames = 0;
  double first_frame_s = 0;           // time to first frame (from generate() entry)
  std::vector<double> block_s;        // wall time of each block (generate + decode + write)
  double total_s = 0;
  int64_t kv_cache_bytes = 0;
};

class VideoGenerator {
 public:
  // vae may be null: then output frames are latent previews (one per latent frame).
  VideoGenerator(models::WanModel model, std::unique_ptr<models::TextConditioner> text,
                 std::unique_ptr<models::WanVAEWrapper> vae, GenerateOptions opts);
  // Checks everything that can be checked before any model work (sizes, divisibility,
  // input files, schedule, output directory writable). Throws naming the flag/file.
  void check(const SampleSpec& spec) const;
  // check() + generation. On error no file is left under out_path/latents_out.
  SampleResult generate(const SampleSpec& spec);

  const GenerateOptions& options() const { return opts_; }
  GenerateOptions& options_mut() { return opts_; }
  models::WanVAEWrapper* vae() { return vae_.get(); }
  int64_t temporal_stride() const;  // pixel frames per latent frame after the first
  // Pixel frames produced for n latent frames (1 + 4 (n - 1) with a VAE, n without).
  int64_t pixel_frames_for(int64_t latent_frames) const;

 private:
  struct Sinks;
  torch::Tensor encode_prompt(const std::string& prompt);
  struct CausalInputs;
  SampleResult run_causal(const SampleSpec& spec, Sinks& sinks, double t0);
  SampleResult run_rollouts(CausalInputs& in, Sinks& sinks, double t0);
  SampleResult run_whole(const SampleSpec& spec, Sinks& sinks, double t0);

  models::WanModel model_;
  std::unique_ptr<models::TextConditioner> text_;
  std::unique_ptr<models::WanVAEWrapper> vae_;
  GenerateOptions opts_;
};

// Seconds on a monotonic clock (for timings).
double now_s();

}  // namespace causvid::inference
