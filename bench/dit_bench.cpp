// bench/dit_bench.cpp: `causvid bench dit`: forward and forward+backward time of the Wan
// DiT, tokens/s, achieved GFLOP/s (matmul FLOPs of the model) and the ratio to a GEMM roof
// measured in the same run (a 2048^3 matmul), in fp32 and bf16, for each attention kernel
// (sdpa, chunked), and with --reference the speed-up against CausVid's Python WanModel timed
// in the same run (bench/reference_dit.py).
#include <torch/csrc/autograd/profiler_legacy.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bench/bench_util.h"
#include "bench/benches.h"
#include "core/runtime.h"
#include "models/common/attention.h"
#include "models/wan/wan_model.h"

namespace causvid::bench {

namespace {

// Matmul FLOPs of one forward (attention over `keys_per_query` keys on average).
double dit_forward_flops(const models::WanConfig& c, int64_t L, double mean_keys, int64_t Fm) {
  const double D = c.dim, T = c.text_len;
  double f = 2.0 * L * (c.in_dim * c.patch_volume()) * D;      // patch embedding
  f += 2.0 * T * c.text_dim * D + 2.0 * T * D * D;              // text embedding
  f += 2.0 * Fm * (c.freq_dim * D + D * D + 6 * D * D);         // time embedding/projection
  double blk = 2.0 * L * D * 3 * D + 2.0 * L * D * D;           // qkv, o
  blk += 4.0 * L * mean_keys * D;                               // self-attention
  blk += 4.0 * L * D * D + 4.0 * T * D * D + 4.0 * L * T * D;   // cross-attention
  blk += 4.0 * L * D * c.ffn_dim;                               // ffn
  f += c.num_layers * blk;
  f += 2.0 * L * D * (c.patch_volume() * c.out_dim);            // head
  return f;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// The pinned torch's Python (the venv scripts/setup.sh made).
std::string pinned_python() {
  std::string venv;
  FILE* f = ::popen(c10::str("bash ", CAUSVID_SOURCE_DIR, "/scripts/torch_env.sh").c_str(), "r");
  TORCH_CHECK(f, "--reference: cannot run scripts/torch_env.sh");
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), f)) venv += buf;
  ::pclose(f);
  while (!venv.empty() && (venv.back() == '\n' || venv.back() == ' ')) venv.pop_back();
  return venv + "/bin/python";
}

// Runs bench/reference_dit.py; returns "dtype/pass" -> seconds from its JSON lines.
std::map<std::string, double> run_reference(const std::string& cmd) {
  std::printf("reference: %s\n", cmd.c_str());
  std::fflush(stdout);
  FILE* f = ::popen(cmd.c_str(), "r");
  TORCH_CHECK(f, "--reference: cannot start ", cmd);
  std::map<std::string, double> out;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), f)) {
    auto j = nlohmann::json::parse(buf, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("seconds"))
      out[j.value("dtype", "") + "/" + j.value("pass", "")] = j.value("seconds", 0.0);
  }
  const int rc = ::pclose(f);
  TORCH_CHECK(rc == 0 && !out.empty(), "--reference: the Python reference failed (exit ", rc,
              "); run the command above to see why (needs the CausVid checkout and diffusers)");
  return out;
}

// The timed model shapes and options of one run.
struct DitCase {
  models::WanConfig cfg;
  int64_t F = 0, H = 0, W = 0, nb = 0, L = 0;
  bool causal = false, backward = true;
  int reps = 3;
  double flops = 0;
  torch::Device dev = torch::kCPU;
  std::string profile, attns;
  std::map<std::string, double> ref;  // "fp32/forward" -> seconds of the Python reference
};

// The table rows of one dtype: forward (and fwd+bwd) per attention kernel.
void time_dtype(const DitCase& c, const std::string& dt_name) {
  auto dt = dt_name == "fp32" ? torch::kFloat32 : torch::kBFloat16;
  const double roof = gemm_roof_gflops(dt, c.dev);
  models::WanModel m(c.cfg);
  m->init_weights(0);
  m->to(c.dev, dt);
  torch::manual_seed(0);
  auto o = torch::TensorOptions().device(c.dev);
  auto x = torch::randn({1, c.cfg.in_dim, c.F, c.H, c.W}).to(c.dev, dt);
  auto ctx = torch::randn({1, c.cfg.text_len, c.cfg.text_dim}).to(c.dev, dt);
  auto t_b = torch::full({1}, 500.0f, o);
  auto t_bf = torch::full({1, c.F}, 500.0f, o);
  auto fwd = [&] {
    return c.causal ? m->forward_causal(x, t_bf, ctx, c.nb) : m->forward(x, t_b, ctx);
  };
  if (!c.profile.empty() && dt == torch::kFloat32) {  // one forward + backward
    fwd().pow(2).mean().backward();
    torch::autograd::profiler::RecordProfile guard(c.profile);
    m->zero_grad();
    fwd().pow(2).mean().backward();
  }
  auto row = [&](const std::string& attn, const char* pass, double secs, double fl) {
    const auto it = c.ref.find(dt_name + "/" + pass);
    std::printf("%-5s %-8s %10.1f %8s %10.4f %10.0f %10.1f %7.1f%% %10s\n", dt_name.c_str(),
                attn.c_str(), roof, pass, secs, c.L / secs, fl / secs / 1e9,
                100.0 * fl / secs / 1e9 / roof,
                it == c.ref.end() ? "-" : c10::str(it->second / secs, "x").c_str());
  };
  for (const auto& attn : split_list(c.attns)) {
    models::set_attention_backend(models::parse_attention_backend(attn));
    double tf = time_median([&] {
      torch::NoGradGuard ng;
      fwd();
      sync(c.dev);
    }, c.reps, 1);
    row(attn, "forward", tf, c.flops);
    if (c.backward) {
      double tb = time_median([&] {
        m->zero_grad();
        fwd().pow(2).mean().backward();
        sync(c.dev);
      }, c.reps, 1);
      row(attn, "fwd+bwd", tb, 3 * c.flops);
    }
  }
  models::set_attention_backend(models::AttentionBackend::kSdpa);
}

}  // namespace

int bench_dit(const DitBenchArgs& a) {
  const auto& preset = a.preset;
  const auto& mode = a.mode;
  const auto& dtypes = a.dtypes;
  const auto& reference = a.reference;
  auto cfg = models::WanConfig::preset(preset);
  if (a.layers) cfg.num_layers = *a.layers;
  const int64_t F = a.frames, H = a.height, W = a.width, nb = a.num_frame_per_block;
  const int R = a.reps;
  const bool causal = mode == "causal";
  TORCH_CHECK(causal || mode == "bidirectional", "--mode: got '", mode,
              "', want bidirectional or causal");
  TORCH_CHECK(F > 0 && H > 0 && W > 0 && H % 2 == 0 && W % 2 == 0,
              "--frames/--height/--width: want positive sizes with even height and width");
  TORCH_CHECK(!causal || F % nb == 0, "--frames ", F, " not divisible by --num-frame-per-block ", nb);
  TORCH_CHECK(reference.empty() || !causal, "--reference: the Python reference is timed in "
              "bidirectional mode only");
  cfg.validate();
  const auto dev = core::resolve_device(a.device);
  const int64_t fs = (H / 2) * (W / 2), L = F * fs;
  double mean_keys = L;
  if (causal) {  // block i attends (i+1) blocks
    const int64_t nblk = F / nb;
    mean_keys = double(fs * nb) * (nblk + 1) / 2.0;
  }
  const double flops = dit_forward_flops(cfg, L, mean_keys, causal ? F : 1);
  std::printf("DiT bench: preset %s, %lld layers, dim %lld, heads %lld, ffn %lld, %lld frames of "
              "%lldx%lld latents = %lld tokens, %s attention, device %s, %d threads\n",
              preset.c_str(), (long long)cfg.num_layers, (long long)cfg.dim,
              (long long)cfg.num_heads, (long long)cfg.ffn_dim, (long long)F, (long long)H,
              (long long)W, (long long)L, mode.c_str(), dev.str().c_str(), at::get_num_threads());
  std::printf("forward matmul FLOPs: %.2f GFLOP (fwd+bwd counted as 3x)\n", flops / 1e9);

  // The Python reference first (its own process; same threads and shapes).
  std::map<std::string, double> ref;  // "fp32/forward" -> seconds
  if (!reference.empty()) {
    std::string py = a.python;
    if (py.empty()) py = pinned_python();
    const std::string cmd = c10::str(
        py, " ", CAUSVID_SOURCE_DIR, "/bench/reference_dit.py --causvid '", reference,
        "' --dim ", cfg.dim, " --heads ", cfg.num_heads, " --layers ", cfg.num_layers,
        " --ffn ", cfg.ffn_dim, " --text-len ", cfg.text_len, " --text-dim ", cfg.text_dim,
        " --frames ", F, " --height ", H, " --width ", W, " --dtypes ", dtypes, " --reps ", R,
        " --threads ", at::get_num_threads(), " --backward ", a.backward ? 1 : 0, " --device ", dev.str());
    ref = run_reference(cmd);
  }

  std::printf("%-5s %-8s %10s %8s %10s %10s %10s %8s %10s\n", "dtype", "attn", "roof GF/s",
              "pass", "time s", "tokens/s", "GFLOP/s", "of roof", "vs python");
  const DitCase c{cfg, F, H, W, nb, L, causal, a.backward, R, flops, dev, a.profile, a.attention, ref};
  for (const auto& dt_name : {std::string("fp32"), std::string("bf16")})
    if (dtypes.find(dt_name) != std::string::npos) time_dtype(c, dt_name);
  for (const auto& kv : ref)
    std::printf("python reference %-14s %10.4f s\n", kv.first.c_str(), kv.second);
  return 0;
}

}  // namespace causvid::bench
