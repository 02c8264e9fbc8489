// trainer/sharded_checkpoint.cpp: see sharded_checkpoint.h.
#include "trainer/sharded_checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "core/log.h"
#include "core/safetensors.h"

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

}  // namespace

std::string save_sharded_checkpoint(const std::string& dir, int64_t step,
                                    const std::vector<NamedModule>& modules,
                                    ShardedAdamW* optimizer,
                                    const std::map<std::string, std::string>& extra) {
  TORCH_CHECK(!modules.empty(), "save_sharded_checkpoint: no modules");
  auto& dist = modules[0].module->dist();
  const std::string final_dir = dir + "/step-" + std::to_string(step);
  const std::string tmp_dir = dir + "/.step-" + std::to_string(step) + ".tmp";
  if (dist.is_main()) {
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
    fs::create_directories(tmp_dir);
  }
  dist.world().barrier();
  json meta;
  meta["format"] = "causvid-sharded-v1";
  meta["step"] = step;
  meta["world_size"] = dist.world_size();
  meta["optimizer_step"] = optimizer ? optimizer->step_count() : 0;
  for (const auto& [k, v] : extra) meta["extra"][k] = v;
  for (const auto& nm : modules) {
    ShardedModule& m = *nm.module;
    const int S = m.shard_group().size(), k = m.shard_group().rank();
    const int oi = opt_index(optimizer, nm.module);
    json jm;
    jm["shard_world"] = S;
    jm["strategy"] = m.options().strategy;
    core::TensorMap tensors;
    auto& units = m.units();
    for (size_t ui = 0; ui < units.size(); ++ui) {
      const auto& u = units[ui];
      json ju;
      ju["name"] = u.name;
      ju["numel"] = u.numel;
      ju["shard_numel"] = u.shard_numel;
      ju["params"] = u.param_names;
      const std::string key = "u" + std::to_string(ui);
      tensors[key] = u.shard;
      if (nm.ema) tensors[key + ".ema"] = (*nm.ema)[ui];
      if (oi >= 0) {
        const auto& st = optimizer->state()[oi][ui];
        ju["opt_step"] = st.step;
        if (st.exp_avg.defined()) {
          tensors[key + ".exp_avg"] = st.exp_avg;
          tensors[key + ".exp_avg_sq"] = st.exp_avg_sq;
        }
      }
      jm["units"].push_back(ju);
    }
    if (m.replica_group().rank() == 0)
      core::save_safetensors(tmp_dir + "/" + shard_file(nm.name, k, S), tensors);
    meta["modules"][nm.name] = jm;
  }
  dist.world().barrier();  // all shards on disk
  if (dist.is_main()) {
    core::write_file_atomic(tmp_dir + "/meta.json", meta.dump(2));  // commit marker
    std::error_code ec;
    fs::remove_all(final_dir, ec);
    fs::rename(tmp_dir, final_dir);
    LOG_INFO("checkpoint: saved %s", final_dir.c_str());
  }
  dist.world().barrier();
  return final_dir;
}

int64_t load_sharded_checkpoint(const std::string& step_dir,
                                const std::vector<NamedModule>& modules,
                                ShardedAdamW* optimizer) {
  const std::string meta_path = step_dir + "/meta.json";
  TORCH_CHECK(core::file_exists(meta_path), meta_path,
              ": missing, want a committed checkpoint (meta.json is written last; a directory "
              "without it is an interrupted save)");
  json meta = json::parse(core::read_file(meta_path));
  TORCH_CHECK(meta.value("format", "") == "causvid-sharded-v1", meta_path,
              ": format got '", meta.value("format", ""), "', want causvid-sharded-v1");
  torch::NoGradGuard ng;
  for (const auto& nm : modules) {
    TORCH_CHECK(meta["modules"].contains(nm.name), meta_path, ": no module '", nm.name, "'");
    const json& jm = meta["modules"][nm.name];
    const int S_old = jm["shard_world"].get<int>();
    TORCH_CHECK(S_old >= 1, meta_path, ": module '", nm.name, "' has shard_world ", S_old);
    ShardFiles files(step_dir, nm.name, S_old);
    ShardedModule& m = *nm.module;
    auto& units = m.units();
    TORCH_CHECK(jm["units"].size() == units.size(), meta_path, ": module '", nm.name, "' has ",
                jm["units"].size(), " units, want ", units.size(),
                " (same wrap policy and model)");
    const int r = m.shard_group().rank();
    const int oi = opt_index(optimizer, nm.module);
    for (size_t ui = 0; ui < units.size(); ++ui) {
      auto& u = units[ui];
      const json& ju = jm["units"][ui];
      TORCH_CHECK(ju["numel"].get<int64_t>() == u.numel &&
                      ju["params"].get<std::vector<std::string>>() == u.param_names,
                  meta_path, ": unit ", ui, " of '", nm.name, "' ('", u.name,
                  "') does not match the model (different parameters or sizes)");
      const std::string key = "u" + std::to_string(ui);
      const int64_t old_n = ju["shard_numel"].get<int64_t>(), n = u.shard_numel;
      const auto dev = u.shard.device();
      auto slice = [&](const std::string& k) {
        auto t = read_my_slice(files, k, old_n, u.numel, n, r, step_dir);
        return t.defined() ? t.to(dev) : t;
      };
      auto w = slice(key);
      TORCH_CHECK(w.defined(), step_dir, ": tensor '", key, "' missing");
      u.shard.copy_(w);
      if (nm.ema) {
        auto e = slice(key + ".ema");
        if (e.defined()) {
          (*nm.ema)[ui].copy_(e);
        } else {
          if (ui == 0) LOG_WARN("%s: no EMA saved for '%s'; EMA restarts from the weights",
                                step_dir, nm.name);
          (*nm.ema)[ui].copy_(u.shard);
        }
      }
      if (oi >= 0) {
        auto& st = optimizer->state()[oi][ui];
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
    m.zero_grad();
    // Refresh materialised params from the new shards.
    m.reshard();
    m.after_step();
  }
  if (optimizer) optimizer->set_step_count(meta["optimizer_step"].get<int64_t>());
  return meta["step"].get<int64_t>();
}

std::string latest_checkpoint(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "";
  int64_t best = -1;
  std::string out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step-", 0) != 0 || !core::file_exists(e.path().string() + "/meta.json")) continue;
    try {
      int64_t s = std::stoll(n.substr(5));
      if (s > best) best = s, out = e.path().string();
    } catch (const std::exception&) {
    }
  }
  return out;
}

void export_full_state_dict(const std::string& path, ShardedModule& module) {
  auto sd = module.full_state_dict(/*rank0_only=*/true);
  if (module.dist().is_main()) core::save_safetensors(path, sd);
  module.dist().world().barrier();
}

}  // namespace causvid::trainer
