// inference/ode_pairs.cpp: see ode_pairs.h.
#include "inference/ode_pairs.h"

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>

#include "core/fs.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/shards.h"
#include "inference/causal_pipeline.h"
#include "models/wan/flow_match.h"

namespace causvid::inference {
namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
// The kept trajectory points [S, F, C, H, W] of prompt i (noise from a generator seeded
// seed + i, so rows do not depend on ranks or resuming).
torch::Tensor ode_pair_row(const models::WanDiffusionWrapper& teacher,
                           models::TextConditioner& text, const std::string& prompt,
                           const torch::Tensor& uncond, const torch::Tensor& keep_t,
                           const OdePairOptions& o, int64_t i) {
  auto cond = text.encode({prompt}).to(o.device);
  auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(o.seed + i));
  std::vector<int64_t> shape = {1};
  shape.insert(shape.end(), o.shape_FCHW.begin(), o.shape_FCHW.end());
  auto noise = torch::randn(shape, gen, torch::kFloat).to(o.device);
  auto tr = teacher.causal()
                ? sample_causal_teacher(teacher, noise, cond, uncond, o.num_steps,
                                        o.guidance_scale, o.shift)
                : sample_teacher(teacher, noise, cond, uncond, o.num_steps, o.guidance_scale,
                                 o.shift);
  // trajectory [1, N+1, F, C, H, W] -> the kept points [S, F, C, H, W]
  return tr.trajectory[0]
      .index_select(0, keep_t.to(tr.trajectory.device()))
      .to(torch::kCPU, torch::kFloat);
}

}  // namespace

std::vector<int64_t> resolve_keep_indices(const std::vector<int64_t>& keep, int64_t num_steps) {
  TORCH_CHECK(num_steps >= 1, "--steps: got ", num_steps, ", want >= 1");
  TORCH_CHECK(!keep.empty(), "--keep: empty, want trajectory indices such as 0,36,44,-1");
  const int64_t n = num_steps + 1;  // noise + one point per step
  std::vector<int64_t> out;
  for (auto k : keep) {
    TORCH_CHECK(k >= -n && k < n, "--keep: index ", k, " outside the ", n, " trajectory points of ",
                num_steps, " steps");
    out.push_back(k < 0 ? k + n : k);
  }
  return out;
}

std::vector<int64_t> keep_for_step_list(const torch::Tensor& steps, int64_t num_steps, double shift,
                                        double* max_error) {
  TORCH_CHECK(num_steps >= 1, "--steps: got ", num_steps, ", want >= 1");
  TORCH_CHECK(steps.dim() == 1 && steps.numel() > 0, "denoising_step_list: want at least one step");
  const auto grid = models::FlowMatchScheduler::wan_sampling(num_steps, shift);
  auto st = steps.to(torch::kFloat32).cpu();
  const auto nearest = grid.lookup(st);  // the grid point of nearest timestep, per step
  const auto clean = st == 0;              // t = 0 is the trajectory's clean end, index -1
  const auto err = (grid.timesteps.index_select(0, nearest) - st).abs().masked_fill(clean, 0);
  const auto idx = nearest.masked_fill(clean, -1).contiguous();
  std::vector<int64_t> keep(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
  if (keep.back() != -1) keep.push_back(-1);
  if (max_error) *max_error = err.max().item<double>();
  return keep;
}

data::ToolStats generate_ode_pairs(const models::WanDiffusionWrapper& teacher,
                             models::TextConditioner& text, const std::vector<std::string>& prompts,
                             const std::string& out_dir, const OdePairOptions& o, int rank,
                             int world_size) {
  TORCH_CHECK(!prompts.empty(), "ode-pairs: no prompts");
  TORCH_CHECK(o.shape_FCHW.size() == 4, "image_or_video_shape: want [B, F, C, H, W]");
  const auto keep = resolve_keep_indices(o.keep, o.num_steps);
  core::make_dirs(out_dir);
  data::ShardPlan plan{static_cast<int64_t>(prompts.size()), o.shard_size};
  data::ToolStats st;
  const auto t0 = std::chrono::steady_clock::now();
  c10::InferenceMode guard;
  core::Progress progress("ode-pairs", plan.items_to_do(rank, world_size, out_dir, o.prefix));
  torch::Tensor uncond;  // the negative prompt, encoded once
  auto keep_t = torch::tensor(keep, torch::kLong);
  for (int64_t k : plan.shards_of(rank, world_size)) {
    const auto path = data::shard_path(out_dir, o.prefix, k);
    if (core::file_exists(path)) {
      ++st.shards_existing;
      auto earlier = data::earlier_shard_failures(path);
      st.failed += static_cast<int64_t>(earlier.size());
      st.failures.insert(st.failures.end(), earlier.begin(), earlier.end());
      continue;
    }
    if (!uncond.defined()) uncond = text.encode({o.negative_prompt}).to(o.device);
    std::vector<std::string> ps;
    std::vector<torch::Tensor> rows;
    std::vector<core::ItemFailure> failed;
    for (int64_t i = plan.begin(k); i < plan.end(k); ++i) {
      try {
        rows.push_back(ode_pair_row(teacher, text, prompts[i], uncond, keep_t, o, i));
        ps.push_back(prompts[i]);
        ++st.done;
      } catch (const std::exception& e) {
        // One prompt's failure (a bad prompt for the encoder, a non-finite sample) is
        // recorded and the rest go on; out-of-memory and the like repeat and show in the list.
        const auto* ce = dynamic_cast<const c10::Error*>(&e);
        failed.push_back({"prompt " + std::to_string(i) + ": " + prompts[i],
                          ce ? ce->what_without_backtrace() : e.what()});
        ++st.failed;
        LOG_WARN("ode-pairs: %s: failed: %s", failed.back().item, failed.back().reason);
      }
      progress.add();
    }
    st.failures.insert(st.failures.end(), failed.begin(), failed.end());
    if (rows.empty()) continue;  // no shard: a rerun retries all of its prompts
    core::write_failures(data::shard_failures_path(path), failed);  // before the shard
    data::write_shard(path, ps, torch::stack(rows), o.store_dtype);
    ++st.shards_written;
    LOG_INFO("%s: %d prompts, %.2f s/prompt", path, rows.size(),
             since(t0) / std::max<int64_t>(st.done, 1));
  }
  progress.finish();
  st.seconds = since(t0);
  return st;
}

}  // namespace causvid::inference
