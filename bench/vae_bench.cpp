// bench/vae_bench.cpp: `causvid bench vae`, the Wan2.1 VAE (models/vae/wan_vae.h) with the real
// dims (dim 96, z 16, [1,2,4,4]) and random weights, on the runtime's device (CPU here).
//   1. One 3x3x3 causal conv of the decoder's last stage (96 -> 96) at HxW, 4-frame chunk:
//      the reference's formulation (cat cache + F.pad + conv3d on [1,C,T,H,W]) as the
//      baseline vs ours (per-frame conv2d taps on frames-major channels-last tensors).
//   2. Per size and dtype, in a child process each (so that peak RSS is per case):
//      encode 1+4k frames chunk by chunk and decode n latent frames one by one (the
//      reference's chunking), printing seconds per chunk, per steady-state frame, the
//      child's peak RSS (getrusage ru_maxrss) and its RSS after building the model (weights).
//      bf16 times are also printed as a ratio to fp32 measured in the same run.
// Children are this same command line plus `--child OP` (read from /proc/self/cmdline), so the
// benchmark works whatever subcommand path dispatches to bench_vae().
#include <sys/resource.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "bench/benches.h"
#include "core/log.h"
#include "models/vae/wan_vae.h"

namespace causvid::bench {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double rss_mb() {  // current resident set size
  std::ifstream f("/proc/self/statm");
  long pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1048576.0);
}

double max_rss_mb() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // KiB on Linux
}

torch::ScalarType parse_dtype(const std::string& s) {
  if (s == "fp32") return torch::kFloat;
  if (s == "bf16") return torch::kBFloat16;
  TORCH_CHECK(false, "--dtypes: got '", s, "', want fp32 or bf16");
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> self_cmdline() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  std::string cur;
  for (char c : all) {
    if (c == '\0') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

// Child: one op at one size and dtype. Prints one "RESULT k=v ..." line on stdout.
int run_child(const std::string& op, torch::ScalarType dtype, int64_t H, int64_t W, int64_t n) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  models::WanVAE vae;  // real config, random weights
  vae->to(dtype);
  const double base = rss_mb();
  models::CausalCache cache;
  std::vector<double> secs;
  const int64_t h = H / 8, w = W / 8;
  if (op == "encode") {
    auto x = (torch::rand({n, 3, H, W}) * 2 - 1).to(dtype);  // frames-major [T,3,H,W]
    for (int64_t s = 0; s < n; s += (s == 0 ? 1 : 4)) {
      auto t0 = Clock::now();
      auto y = vae->encode_chunk(x.slice(0, s, s == 0 ? 1 : s + 4), cache);
      secs.push_back(seconds_since(t0));
    }
  } else {
    auto z = torch::randn({n, 16, h, w}).to(dtype);  // un-normalised latents [T,z,h,w]
    std::vector<torch::Tensor> outs;                 // kept, as a decode keeps its output
    for (int64_t t = 0; t < n; ++t) {
      auto t0 = Clock::now();
      outs.push_back(vae->decode_chunk(z.slice(0, t, t + 1), cache));
      secs.push_back(seconds_since(t0));
    }
  }
  std::printf("RESULT op=%s H=%lld W=%lld n=%lld maxrss_mb=%.0f base_rss_mb=%.0f cache_mb=%.0f secs=",
              op.c_str(), (long long)H, (long long)W, (long long)n, max_rss_mb(), base,
              cache.bytes() / 1048576.0);
  for (size_t i = 0; i < secs.size(); ++i) std::printf("%s%.3f", i ? "," : "", secs[i]);
  std::printf("\n");
  return 0;
}

struct ChildResult {
  bool ok = false;
  double maxrss = 0, base = 0, cache = 0;
  std::vector<double> secs;
  std::string raw;
};

ChildResult spawn_child(const std::vector<std::string>& args) {
  std::string cmd;
  for (const auto& a : args) cmd += shell_quote(a) + " ";
  cmd += "2>&1";
  ChildResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  TORCH_CHECK(p, "bench vae: cannot run child: ", cmd);
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), p)) r.raw += buf;
  int status = ::pclose(p);
  auto pos = r.raw.find("RESULT ");
  if (status != 0 || pos == std::string::npos) return r;
  std::istringstream line(r.raw.substr(pos + 7));
  std::string kv;
  while (line >> kv) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    auto k = kv.substr(0, eq), v = kv.substr(eq + 1);
    if (k == "maxrss_mb") r.maxrss = std::stod(v);
    if (k == "base_rss_mb") r.base = std::stod(v);
    if (k == "cache_mb") r.cache = std::stod(v);
    if (k == "secs")
      for (const auto& s : split(v, ',')) r.secs.push_back(std::stod(s));
  }
  r.ok = true;
  return r;
}

// Section 1: the reference's conv3d formulation vs ours for one causal 3x3x3 conv.
void conv_baseline(int64_t H, int64_t W, int reps) {
  torch::NoGradGuard no_grad;
  const int64_t C = 96, T = 4;
  models::CausalConv3d conv(C, C, 3, 3, 1, 1);
  auto x_TCHW = torch::randn({T, C, H, W}).contiguous(torch::MemoryFormat::ChannelsLast);
  auto hist = torch::randn({2, C, H, W}).contiguous(torch::MemoryFormat::ChannelsLast);
  auto x_BCTHW = x_TCHW.permute({1, 0, 2, 3}).unsqueeze(0).contiguous();
  auto hist_BCTHW = hist.permute({1, 0, 2, 3}).unsqueeze(0).contiguous();
  auto ref = [&] {  // CausalConv3d.forward(x, cache_x): cat, F.pad(spatial), conv3d
    auto xin = torch::cat({hist_BCTHW, x_BCTHW}, 2);
    xin = torch::constant_pad_nd(xin, {1, 1, 1, 1, 0, 0}, 0);
    return torch::conv3d(xin, conv->weight, conv->bias);
  };
  auto ours = [&] {
    torch::Tensor c = hist;
    return conv->forward(x_TCHW, &c);
  };
  auto diff = (ref()[0].permute({1, 0, 2, 3}) - ours()).abs().max().item<double>();
  auto time = [&](auto&& fn) {
    fn();
    auto t0 = Clock::now();
    for (int i = 0; i < reps; ++i) fn();
    return seconds_since(t0) / reps;
  };
  const double t_ref = time(ref), t_ours = time(ours);
  const double gflop = 2.0 * C * C * 27 * T * H * W / 1e9;
  std::printf("conv 96->96 3x3x3, 4-frame chunk at %lldx%lld (fp32, %d threads): max |diff| %.2e\n",
              (long long)H, (long long)W, at::get_num_threads(), diff);
  std::printf("  %-44s %8.3f s  %6.1f GFLOP/s  1.00x\n", "reference formulation (cat+pad+conv3d)",
              t_ref, gflop / t_ref);
  std::printf("  %-44s %8.3f s  %6.1f GFLOP/s  %.2fx\n", "ours (conv2d taps, channels-last)", t_ours,
              gflop / t_ours, t_ref / t_ours);
}

// "HxW" (multiples of 8) -> (H, W); errors name the flag.
std::pair<int64_t, int64_t> parse_hw(const std::string& flag, const std::string& s) {
  auto v = split(s, 'x');
  TORCH_CHECK(v.size() == 2, flag, ": got '", s, "', want HxW");
  auto num = [&](const std::string& x) {
    char* end = nullptr;
    const long long n = std::strtoll(x.c_str(), &end, 10);
    TORCH_CHECK(!x.empty() && *end == '\0', flag, ": got '", s, "', want HxW");
    return static_cast<int64_t>(n);
  };
  const int64_t H = num(v[0]), W = num(v[1]);
  TORCH_CHECK(H > 0 && W > 0 && H % 8 == 0 && W % 8 == 0, flag, ": got ", s,
              ", want positive multiples of 8");
  return std::make_pair(H, W);
}

// One child process per (size, op, dtype) row of the table.
void run_table(const std::vector<std::string>& self, const std::string& sizes,
               const std::string& ops, const std::string& dtypes, int64_t ne, int64_t nd) {
  for (const auto& size : split(sizes, ',')) {
    parse_hw("--sizes", size);  // validates
    for (const auto& op : split(ops, ',')) {
      TORCH_CHECK(op == "encode" || op == "decode", "--ops: got '", op, "', want encode,decode");
      double fp32_steady = 0;
      for (const auto& dt : split(dtypes, ',')) {
        parse_dtype(dt);
        auto args = self;
        const int64_t n = op == "encode" ? ne : nd;
        for (const auto& a : {std::string("--child"), op, std::string("--child-dtype"), dt,
                              std::string("--child-size"), size, std::string("--child-n"),
                              std::to_string(n)})
          args.push_back(a);
        auto r = spawn_child(args);
        if (!r.ok || r.secs.size() < 2) {
          std::printf("%-7s %-9s %-5s FAILED: %s\n", op.c_str(), size.c_str(), dt.c_str(),
                      r.raw.substr(0, 600).c_str());
          continue;
        }
        double steady = 0;
        for (size_t i = 1; i < r.secs.size(); ++i) steady += r.secs[i];
        steady /= 4.0 * (r.secs.size() - 1);
        if (dt == "fp32") fp32_steady = steady;
        std::string ratio = fp32_steady > 0 ? absl::StrFormat("%.2fx", fp32_steady / steady) : "-";
        std::printf("%-7s %-9s %-5s %9.2f %9.2f %8s %9.0f %8.0f %8.0f %8lld\n", op.c_str(),
                    size.c_str(), dt.c_str(), r.secs[0], steady, ratio.c_str(), r.maxrss,
                    r.maxrss - r.base, r.cache, (long long)n);
        std::fflush(stdout);
      }
    }
  }
}

}  // namespace

int bench_vae(const VaeBenchArgs& a) {
  const auto& child = a.child;
  if (!child.empty()) {
    auto hw = parse_hw("--child-size", a.child_size);
    return run_child(child, parse_dtype(a.child_dtype), hw.first, hw.second, a.child_n);
  }

  const int64_t ne = a.enc_frames;
  const int64_t nd = a.dec_latent;
  TORCH_CHECK(ne >= 5 && (ne - 1) % 4 == 0, "--enc-frames: got ", ne, ", want 1+4k with k >= 1");
  TORCH_CHECK(nd >= 2, "--dec-latent: got ", nd, ", want >= 2");
  if (a.conv_size != "none") {
    auto hw = parse_hw("--conv-size", a.conv_size);
    conv_baseline(hw.first, hw.second, a.reps);
    std::fflush(stdout);
  }

  const auto self = self_cmdline();
  TORCH_CHECK(!self.empty(), "bench vae: cannot read /proc/self/cmdline");
  std::printf("\nWan2.1 VAE, real dims, random weights, %d threads; one child process per row.\n",
              at::get_num_threads());
  std::printf("steady = seconds per output frame of a full chunk (encode: 4 frames in, "
              "decode: 4 frames out); peak = child's max RSS; act = peak - RSS after building "
              "the model; cache = causal cache after the run.\n");
  std::printf("%-7s %-9s %-5s %9s %9s %8s %9s %8s %8s %8s\n", "op", "size", "dtype", "first_s",
              "steady_s", "vs_fp32", "peak_MiB", "act_MiB", "cache", "frames");
  run_table(self, a.sizes, a.ops, a.dtypes, ne, nd);
  return 0;
}

}  // namespace causvid::bench
