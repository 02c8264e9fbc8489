// trainer/checkpoint.cpp: see checkpoint.h.
#include "trainer/checkpoint.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <regex>

#include "core/checksum.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "core/state_dict.h"
#include "core/tensor_io.h"
#include "models/wan/wan_loader.h"
#include "trainer/checkpoint_state.h"

namespace causvid::trainer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string shard_file(const std::string& module, int k, int S) {
  return module + ".shard-" + std::to_string(k) + "-of-" + std::to_string(S) + ".safetensors";
}

int opt_index(ShardedAdamW* opt, ShardedModule* m) {
  if (!opt) return -1;
  const auto& ms = opt->modules();
  for (size_t i = 0; i < ms.size(); ++i)
    if (ms[i] == m) return int(i);
  return -1;
}

// The old shard files of one module, opened (memory-mapped) on first use.
class ShardFiles {
 public:
  ShardFiles(std::string step_dir, std::string module, int S)
      : dir_(std::move(step_dir)), module_(std::move(module)), files_(S) {}
  int size() const { return static_cast<int>(files_.size()); }
  const core::SafetensorsFile& at(int k) {
    if (!files_[k]) {
      const std::string f = dir_ + "/" + shard_file(module_, k, size());
      TORCH_CHECK(core::file_exists(f), f, ": missing shard file");
      files_[k] = std::make_unique<core::SafetensorsFile>(f);
    }
    return *files_[k];
  }

 private:
  std::string dir_, module_;
  std::vector<std::unique_ptr<core::SafetensorsFile>> files_;
};

// This rank's slice [rank * n, (rank + 1) * n) (n = new shard_numel) of unit tensor `key`,
// whose flat vector (numel elements, zero padded) was saved in S_old shards of old_n
// elements each. Reads only the overlapping ranges. Undefined when the key was not saved.
torch::Tensor read_my_slice(ShardFiles& files, const std::string& key, int64_t old_n,
                            int64_t numel, int64_t n, int rank, const std::string& what) {
  auto out = torch::zeros({n}, torch::kFloat32);
  const int64_t lo = int64_t(rank) * n, hi = std::min(lo + n, numel);
  bool found = false;
  for (int k = 0; k < files.size() && lo < hi; ++k) {
    const int64_t a = std::max(lo, int64_t(k) * old_n), b = std::min(hi, int64_t(k + 1) * old_n);
    if (a >= b) continue;
    const auto& f = files.at(k);
    if (!f.contains(key)) return {};
    TORCH_CHECK(f.info(key).shape == std::vector<int64_t>{old_n}, what, ": tensor '", key,
                "' of shard ", k, " is not a flat vector of ", old_n, " elements");
    out.narrow(0, a - lo, b - a).copy_(f.read_range(key, a - int64_t(k) * old_n,
                                                      b - int64_t(k) * old_n));
    found = true;
  }
  if (!found && lo < hi) return {};
  return out;
}


const std::regex& checkpoint_re() {
  static const std::regex re("checkpoint_model_([0-9]{6,})");
  return re;
}

// Renames d out of the checkpoint set (one atomic step), then removes it.
void discard(const fs::path& d) {
  std::error_code ec;
  const fs::path trash =
      d.parent_path() / ("." + d.filename().string() + ".trash." + std::to_string(::getpid()));
  fs::rename(d, trash, ec);
  TORCH_CHECK(!ec, d.string(), ": cannot move aside: ", ec.message());
  fs::remove_all(trash, ec);
}

// Each unit's layout; the shards, moments and EMA of this rank go to its shard file.
json write_model_shards(const std::string& dir, const ModelState& ms) {
  ShardedModule& m = *ms.module;
  const int S = m.shard_group().size(), k = m.shard_group().rank();
  const int oi = opt_index(ms.optimizer, ms.module);
  TORCH_CHECK(!ms.optimizer || oi >= 0, "checkpoint: the optimizer of '", ms.name,
              "' does not update it");
  json jm;
  jm["shard_world"] = S;
  jm["strategy"] = m.options().strategy;
  jm["optimizer_step"] = ms.optimizer ? ms.optimizer->step_count() : 0;
  jm["units"] = json::array();
  core::TensorMap tensors;
  const auto& units = m.units();
  for (size_t ui = 0; ui < units.size(); ++ui) {
    const auto& u = units[ui];
    json ju = {{"name", u.name},
               {"numel", u.numel},
               {"shard_numel", u.shard_numel},
               {"params", u.param_names}};
    const std::string key = "u" + std::to_string(ui);
    tensors[key] = u.shard;
    if (ms.ema) tensors[key + ".ema"] = ms.ema->shards()[ui];
    if (oi >= 0) {
      const auto& st = ms.optimizer->state()[oi][ui];
      ju["opt_step"] = st.step;
      if (st.exp_avg.defined()) {
        tensors[key + ".exp_avg"] = st.exp_avg;
        tensors[key + ".exp_avg_sq"] = st.exp_avg_sq;
      }
    }
    jm["units"].push_back(ju);
  }
  if (m.replica_group().rank() == 0)
    core::save_safetensors(dir + "/" + shard_file(ms.name, k, S), tensors);
  return jm;
}

// Where a model's shards and layout are: this scheme's top-level files, or (checkpoints of
// causvid before the single scheme) state_<generator|critic>/step-N/ with its own meta.json.
struct ModelFiles {
  std::string dir;
  json layout;
};
ModelFiles locate_model(const std::string& dir, const json& state, const std::string& name) {
  if (state.contains("models")) {
    TORCH_CHECK(state["models"].contains(name), dir, "/trainer_state.json: no model '", name,
                "' in this checkpoint (it holds: ", state["models"].dump(), ")");
    return {dir, state["models"][name]};
  }
  const std::string legacy = dir + "/state_" + name + "/step-" +
                             std::to_string(state.at("step").get<int64_t>());
  const std::string meta_path = legacy + "/meta.json";
  TORCH_CHECK(core::file_exists(meta_path), dir, ": no shard layout for model '", name,
              "' (neither trainer_state.json 'models' nor ", meta_path, ")");
  json meta = parse_legacy_meta(core::read_file(meta_path), meta_path);
  TORCH_CHECK(meta["modules"].contains(name), meta_path, ": no module '", name, "'");
  json layout = meta["modules"][name];
  layout["optimizer_step"] = meta.value("optimizer_step", int64_t(0));
  return {legacy, layout};
}

void load_model(const ModelFiles& mf, const ModelState& ms) {
  const json& jm = mf.layout;
  const std::string& where = mf.dir;
  const int S_old = jm.at("shard_world").get<int>();
  TORCH_CHECK(S_old >= 1, where, ": model '", ms.name, "' has shard_world ", S_old);
  ShardFiles files(where, ms.name, S_old);
  ShardedModule& m = *ms.module;
  const auto& units = m.units();
  TORCH_CHECK(jm["units"].size() == units.size(), where, ": model '", ms.name, "' has ",
              jm["units"].size(), " units, want ", units.size(), " (same wrap policy and model)");
  const int r = m.shard_group().rank();
  const int oi = opt_index(ms.optimizer, ms.module);
  for (size_t ui = 0; ui < units.size(); ++ui) {
    const auto& u = units[ui];
    const json& ju = jm["units"][ui];
    TORCH_CHECK(ju["numel"].get<int64_t>() == u.numel &&
                    ju["params"].get<std::vector<std::string>>() == u.param_names,
                where, ": unit ", ui, " of '", ms.name, "' ('", u.name,
                "') does not match the model (different parameters or sizes)");
    const std::string key = "u" + std::to_string(ui);
    const int64_t old_n = ju["shard_numel"].get<int64_t>(), n = u.shard_numel;
    const auto dev = u.shard.device();
    auto slice = [&](const std::string& k) {
      auto t = read_my_slice(files, k, old_n, u.numel, n, r, where);
      return t.defined() ? t.to(dev) : t;
    };
    auto w = slice(key);
    TORCH_CHECK(w.defined(), where, ": tensor '", key, "' of model '", ms.name, "' missing");
    m.load_shard(ui, w);
    if (ms.ema) {
      auto e = slice(key + ".ema");
      if (e.defined()) {
        ms.ema->load_shard(ui, e);
      } else {
        if (ui == 0)
          LOG_WARN("%s: no EMA saved for '%s'; EMA restarts from the weights", where, ms.name);
        ms.ema->reset_shard(ui);
      }
    }
    if (oi >= 0) {
      auto& st = ms.optimizer->state()[oi][ui];
      auto ea = slice(key + ".exp_avg");
      auto eas = slice(key + ".exp_avg_sq");
      st.step = ju.value("opt_step", int64_t(0));
      if (ea.defined() && eas.defined()) {
        st.exp_avg = ea;
        st.exp_avg_sq = eas;
      } else {
        st.exp_avg = st.exp_avg_sq = torch::Tensor();
      }
    }
  }
  m.finish_load();
  if (ms.optimizer) ms.optimizer->set_step_count(jm.value("optimizer_step", int64_t(0)));
}

// Size and CRC-32C of every file of the checkpoint being written in `tmp`, as a JSON map by
// path relative to it (collective). Each rank checksums what it wrote (its shards, its rng
// file), the results meet in one sum over fixed slots (model m shard k; rng of rank r; a
// slot holds bytes + 1, 0 = not written), and rank 0 adds the files it writes itself.
json shard_checksums(core::DistContext& dist, const fs::path& tmp,
                     const std::vector<ModelState>& models, bool rng_written) {
  std::vector<std::string> names;
  std::vector<int64_t> slots;
  for (const auto& ms : models) {
    const int S = ms.module->shard_group().size(), k = ms.module->shard_group().rank();
    for (int i = 0; i < S; ++i) names.push_back(shard_file(ms.name, i, S));
    slots.resize(2 * names.size(), 0);
    if (ms.module->replica_group().rank() == 0) {
      const size_t slot = names.size() - S + k;
      const auto c = core::checksum_file((tmp / names[slot]).string());
      slots[2 * slot] = c.bytes + 1;
      slots[2 * slot + 1] = c.crc32c;
    }
  }
  for (int r = 0; r < dist.world_size(); ++r)
    names.push_back("rng/rank" + std::to_string(r) + ".bin");
  slots.resize(2 * names.size(), 0);
  if (rng_written) {
    const size_t slot = names.size() - dist.world_size() + dist.rank();
    const auto c = core::checksum_file((tmp / names[slot]).string());
    slots[2 * slot] = c.bytes + 1;
    slots[2 * slot + 1] = c.crc32c;
  }
  const auto all = dist.world().sum(slots);
  json files = json::object();
  for (size_t i = 0; i < names.size(); ++i)
    if (all[2 * i] > 0) files[names[i]] = {{"bytes", all[2 * i] - 1}, {"crc32c", all[2 * i + 1]}};
  return files;
}

// Adds the files under tmp that `files` does not list yet (rank 0's own: model.pt, config.yaml).
void checksum_rest(const fs::path& tmp, json& files) {
  for (const auto& e : fs::recursive_directory_iterator(tmp)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), tmp).string();
    if (rel == "trainer_state.json" || files.contains(rel)) continue;
    const auto c = core::checksum_file(e.path().string());
    files[rel] = {{"bytes", c.bytes}, {"crc32c", c.crc32c}};
  }
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "checkpoint_model_%06lld", static_cast<long long>(step));
  return buf;
}

std::string save_checkpoint(const std::string& root, int64_t step,
                            const CheckpointContents& contents, int keep_latest) {
  TORCH_CHECK(!contents.models.empty(), "save_checkpoint: no models");
  auto& dist = contents.models[0].module->dist();
  const std::string name = checkpoint_name(step);
  const fs::path final_dir = fs::path(root) / name;
  const fs::path tmp = fs::path(root) / ("." + name + ".tmp");
  std::error_code ec;
  if (dist.is_main()) {
    core::make_dirs(root);
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp / "rng", ec);
    TORCH_CHECK(!ec, tmp.string(), ": cannot create checkpoint directory: ", ec.message());
  }
  dist.world().barrier();
  json state = contents.state;
  state["format"] = "causvid-checkpoint-v2";
  state["step"] = step;
  state["world_size"] = dist.world_size();
  for (const auto& ms : contents.models)
    state["models"][ms.name] = write_model_shards(tmp.string(), ms);
  if (!contents.rng_state.empty())
    core::write_file_atomic((tmp / "rng" / ("rank" + std::to_string(dist.rank()) + ".bin")).string(),
                            contents.rng_state);
  dist.world().barrier();  // every shard and rng file on disk
  json files = shard_checksums(dist, tmp, contents.models, !contents.rng_state.empty());
  if (dist.is_main()) {
    if (contents.write_rank0) contents.write_rank0(tmp.string());
    checksum_rest(tmp, files);
    state["files"] = files;
    core::write_file_atomic((tmp / "trainer_state.json").string(), state.dump(2) + "\n");
    if (fs::exists(final_dir, ec)) discard(final_dir);
    fs::rename(tmp, final_dir, ec);
    TORCH_CHECK(!ec, final_dir.string(), ": cannot commit checkpoint: ", ec.message());
    // keep_latest: drop older complete checkpoints; clear leftovers of interrupted discards.
    static const std::regex trash_re("\\.checkpoint_model_[0-9]{6,}\\.trash\\.[0-9]+");
    std::vector<std::string> dirs;
    for (const auto& e : fs::directory_iterator(root, ec)) {
      const std::string n = e.path().filename().string();
      if (!e.is_directory()) continue;
      if (std::regex_match(n, checkpoint_re())) dirs.push_back(e.path().string());
      if (std::regex_match(n, trash_re)) fs::remove_all(e.path(), ec);
    }
    if (keep_latest > 0) {
      std::sort(dirs.begin(), dirs.end());
      for (size_t i = 0; i + keep_latest < dirs.size(); ++i) discard(dirs[i]);
    }
  }
  dist.world().barrier();
  return final_dir.string();
}

// The complete checkpoints under root (trainer_state.json present), newest first.
static std::vector<std::string> complete_checkpoints(const std::string& root) {
  std::error_code ec;
  std::vector<std::pair<int64_t, std::string>> found;
  if (fs::is_directory(root, ec))
    for (const auto& e : fs::directory_iterator(root, ec)) {
      std::smatch m;
      const std::string name = e.path().filename().string();
      if (e.is_directory() && std::regex_match(name, m, checkpoint_re()) &&
          fs::exists(e.path() / "trainer_state.json", ec))
        found.push_back({std::stoll(m[1].str()), e.path().string()});
    }
  std::sort(found.rbegin(), found.rend());
  std::vector<std::string> dirs;
  for (auto& f : found) dirs.push_back(std::move(f.second));
  return dirs;
}

std::string latest_checkpoint(const std::string& root) {
  const auto dirs = complete_checkpoints(root);
  return dirs.empty() ? "" : dirs.front();
}

std::string verify_checkpoint(const std::string& dir) {
  json st;
  try {
    st = read_checkpoint_state(dir);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  if (!st.contains("files")) return "";
  for (const auto& [rel, want] : st["files"].items()) {
    const std::string f = dir + "/" + rel;
    if (!core::file_exists(f)) return f + ": missing (listed in trainer_state.json)";
    core::FileChecksum got;
    try {
      got = core::checksum_file(f);
    } catch (const c10::Error& e) {
      return e.what_without_backtrace();
    }
    if (got.bytes != want.at("bytes").get<int64_t>())
      return f + ": " + std::to_string(got.bytes) + " bytes, trainer_state.json says " +
             std::to_string(want.at("bytes").get<int64_t>());
    if (got.crc32c != want.at("crc32c").get<uint32_t>())
      return f + ": CRC-32C mismatch (the file changed after the checkpoint was written)";
  }
  return "";
}

std::string latest_verified_checkpoint(const std::string& root) {
  for (const auto& dir : complete_checkpoints(root)) {
    const std::string problem = verify_checkpoint(dir);
    if (problem.empty()) return dir;
    LOG_WARN("resume: skipping damaged checkpoint %s: %s", dir, problem);
  }
  return "";
}

std::string resolve_resume(const std::string& resume, const std::string& root,
                           core::DistContext& dist) {
  if (resume.empty()) return "";
  if (resume == "auto") {
    int64_t step1 = 0;  // rank 0's choice: step + 1, 0 = none
    if (dist.is_main()) {
      const std::string dir = latest_verified_checkpoint(root);
      if (!dir.empty()) step1 = read_checkpoint_state(dir).at("step").get<int64_t>() + 1;
    }
    step1 = dist.world().sum({step1})[0];
    if (step1 == 0) {
      LOG_INFO("resume auto: no complete checkpoint under %s, starting fresh", root);
      return "";
    }
    return (fs::path(root) / checkpoint_name(step1 - 1)).string();
  }
  std::string problem;
  if (dist.is_main()) problem = verify_checkpoint(resume);
  const bool bad = dist.world().sum({problem.empty() ? 0 : 1})[0] > 0;
  TORCH_CHECK(!bad, "--resume ", resume, ": ",
              problem.empty() ? std::string("rank 0 found the checkpoint damaged") : problem);
  return resume;
}

json read_checkpoint_state(const std::string& dir) {
  const std::string f = dir + "/trainer_state.json";
  TORCH_CHECK(core::file_exists(f), dir,
              ": not a complete checkpoint (no trainer_state.json; it is written last, so a "
              "directory without it is an interrupted save)");
  return parse_checkpoint_state(core::read_file(f), f);
}

void load_checkpoint(const std::string& dir, const json& state,
                     const std::vector<ModelState>& models) {
  torch::NoGradGuard ng;
  for (const auto& ms : models) load_model(locate_model(dir, state, ms.name), ms);
}

std::string read_rng_state(const std::string& dir, int rank) {
  const std::string f = dir + "/rng/rank" + std::to_string(rank) + ".bin";
  return core::file_exists(f) ? core::read_file(f) : std::string();
}

}  // namespace causvid::trainer
