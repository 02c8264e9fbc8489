// cli/inspect_command.cpp: `causvid inspect FILE`: keys, dtypes, shapes, parameter counts and
// bytes of a weight file (safetensors or torch.save .pt/.pth), plus totals per dtype.
// Reads only headers and the pickle: tensors are memory-mapped and never touched.
// Also `causvid config`: the resolved, validated config of a YAML file after --set overrides
// (what a training run would use), or every known key.
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/config.h"
#include "core/safetensors.h"
#include "core/tensor_io.h"

namespace causvid::cli {
namespace {

struct Row {
  std::string key, dtype, shape;
  int64_t numel = 0, bytes = 0;
};

std::string dtype_name(torch::ScalarType t) {
  try {
    return core::safetensors_dtype_name(t);
  } catch (const c10::Error&) {
    return c10::toString(t);
  }
}

std::string shape_string(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// 1234567 -> "1,234,567".
std::string grouped(int64_t v) {
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0 && s[i - 1] != '-') out.push_back(',');
    out.push_back(s[i]);
  }
  return out;
}

std::string human(double v, const char* const* units, double base) {
  int u = 0;
  while (v >= base && units[u + 1]) v /= base, ++u;
  char buf[64];
  std::snprintf(buf, sizeof(buf), u ? "%.2f %s" : "%.0f%s", v, units[u]);
  return buf;
}
std::string human_count(int64_t v) {
  static const char* kUnits[] = {"", "K", "M", "B", "T", nullptr};
  return human(static_cast<double>(v), kUnits, 1000.0);
}
std::string human_bytes(int64_t v) {
  static const char* kUnits[] = {" B", "KiB", "MiB", "GiB", "TiB", nullptr};
  return human(static_cast<double>(v), kUnits, 1024.0);
}

struct InspectArgs {
  std::string file, filter;
  int max_keys = 200;
};

void print_table(const InspectArgs& a, core::WeightFormat fmt, const std::vector<Row>& rows,
                 const core::NamedValues& others,
                 const std::map<std::string, std::string>& metadata, int64_t storage_bytes);

int run_inspect(const InspectArgs& a) {
  const std::string& file = a.file;
  const std::string& filter = a.filter;
  const core::WeightFormat fmt = core::detect_weight_format(file);
  std::vector<Row> rows;
  core::NamedValues others;
  std::map<std::string, std::string> metadata;
  int64_t storage_bytes = -1;  // torch files: unique storages of the shown tensors
  auto match = [&](const std::string& k) {
    return filter.empty() || k.find(filter) != std::string::npos;
  };
  if (fmt == core::WeightFormat::kSafetensors) {
    core::SafetensorsFile f(file);
    metadata = f.metadata();
    for (const auto& k : f.keys()) {
      if (!match(k)) continue;
      const auto& info = f.info(k);
      int64_t numel = 1;
      for (auto d : info.shape) numel *= d;
      rows.push_back(Row{k, info.dtype_name, shape_string(info.shape), numel,
                         static_cast<int64_t>(info.end - info.begin)});
    }
  } else {
    // Unknown and legacy files: load_weights throws the clear error naming what is wanted.
    if (fmt != core::WeightFormat::kTorchZip) core::load_weights(file);
    c10::IValue obj = core::load_torch_checkpoint(file);
    core::NamedValues all_others;
    core::TensorMap tensors;
    try {
      tensors = core::flatten_tensors(obj, "", &all_others);
    } catch (const c10::Error& e) {
      TORCH_CHECK(false, file, ": ", e.what_without_backtrace());
    }
    std::set<const void*> seen;
    storage_bytes = 0;
    for (const auto& kv : tensors) {
      if (!match(kv.first)) continue;
      const auto& t = kv.second;
      rows.push_back(Row{kv.first, dtype_name(t.scalar_type()), shape_string(t.sizes()), t.numel(),
                         static_cast<int64_t>(t.numel() * t.element_size())});
      if (seen.insert(t.storage().unsafeGetStorageImpl()).second)
        storage_bytes += static_cast<int64_t>(t.storage().nbytes());
    }
    for (auto& kv : all_others)
      if (match(kv.first)) others.push_back(std::move(kv));
  }
  print_table(a, fmt, rows, others, metadata, storage_bytes);
  return 0;
}

void print_table(const InspectArgs& a, core::WeightFormat fmt, const std::vector<Row>& rows,
                 const core::NamedValues& others,
                 const std::map<std::string, std::string>& metadata, int64_t storage_bytes) {
  const std::string& file = a.file;
  const std::string& filter = a.filter;
  const int max_keys = a.max_keys;
  std::printf("file: %s\nformat: %s\n", file.c_str(), core::weight_format_name(fmt));
  for (const auto& kv : metadata)
    std::printf("metadata: %s = %s\n", kv.first.c_str(), kv.second.c_str());
  if (!filter.empty()) std::printf("filter: keys containing '%s'\n", filter.c_str());

  const size_t shown = max_keys == 0 ? rows.size() : std::min<size_t>(rows.size(), max_keys);
  size_t key_w = 3, shape_w = 5;
  for (size_t i = 0; i < shown; ++i) {
    key_w = std::max(key_w, std::min<size_t>(rows[i].key.size(), 90));
    shape_w = std::max(shape_w, rows[i].shape.size());
  }
  if (shown) {
    std::printf("\n%-*s  %-5s  %-*s  %15s  %15s\n", int(key_w), "key", "dtype", int(shape_w),
                "shape", "params", "bytes");
    for (size_t i = 0; i < shown; ++i) {
      const Row& r = rows[i];
      std::printf("%-*s  %-5s  %-*s  %15s  %15s\n", int(key_w), r.key.c_str(), r.dtype.c_str(),
                  int(shape_w), r.shape.c_str(), grouped(r.numel).c_str(),
                  grouped(r.bytes).c_str());
    }
  }
  if (shown < rows.size())
    std::printf("... %zu more tensors not shown (--max-keys 0 shows all)\n", rows.size() - shown);
  if (!others.empty()) {
    std::printf("\nnon-tensor entries (%zu):\n", others.size());
    for (size_t i = 0; i < others.size() && (max_keys == 0 || i < size_t(max_keys)); ++i)
      std::printf("  %s = %s\n", others[i].first.c_str(),
                  core::ivalue_summary(others[i].second).c_str());
  }

  std::map<std::string, std::pair<int64_t, int64_t>> by_dtype;  // dtype -> (params, bytes)
  std::map<std::string, int64_t> count_by_dtype;
  int64_t total_params = 0, total_bytes = 0;
  for (const auto& r : rows) {
    by_dtype[r.dtype].first += r.numel;
    by_dtype[r.dtype].second += r.bytes;
    ++count_by_dtype[r.dtype];
    total_params += r.numel;
    total_bytes += r.bytes;
  }
  std::printf("\n");
  for (const auto& kv : by_dtype)
    std::printf("dtype %-5s %8s tensors  %18s params (%s)  %18s bytes (%s)\n", kv.first.c_str(),
                grouped(count_by_dtype[kv.first]).c_str(), grouped(kv.second.first).c_str(),
                human_count(kv.second.first).c_str(), grouped(kv.second.second).c_str(),
                human_bytes(kv.second.second).c_str());
  std::printf("total: %zu tensors, %s parameters (%s), %s bytes (%s)\n", rows.size(),
              grouped(total_params).c_str(), human_count(total_params).c_str(),
              grouped(total_bytes).c_str(), human_bytes(total_bytes).c_str());
  if (storage_bytes >= 0 && storage_bytes != total_bytes)
    std::printf("storages: %s bytes (%s) in the file for these tensors (shared storages once)\n",
                grouped(storage_bytes).c_str(), human_bytes(storage_bytes).c_str());
}

struct ConfigCommandArgs {
  ConfigArgs config;
  std::string out;
  bool no_validate = false, list_keys = false;
};

void print_config_keys() {
  std::string section;
  for (const auto& k : core::config_keys()) {
    if (k.section != section) {
      section = k.section;
      std::printf("# ---- %s\n", section.c_str());
    }
    std::printf("%-38s %s%s\n    %s; default %s\n", k.name.c_str(), k.type.c_str(),
                k.required_ode   ? " (required)"
                : k.required_dmd ? " (required for dmd)"
                                 : "",
                k.doc.c_str(), k.default_value.c_str());
  }
}

int run_config(const ConfigCommandArgs& a) {
  if (a.list_keys) {
    print_config_keys();
    return 0;
  }
  if (a.config.path.empty()) {
    std::fprintf(stderr, "causvid config: --config FILE is required (see --help)\n");
    return 2;
  }
  core::Config c = core::read_config(a.config.path);
  core::apply_overrides(c, a.config.sets);
  if (!a.no_validate) c.validate();
  if (!a.out.empty()) core::save_config(c, a.out);
  std::fputs(core::config_to_yaml(c).c_str(), stdout);
  return 0;
}

}  // namespace

void add_inspect_commands(Commands& cmds) {
  auto in = std::make_shared<InspectArgs>();
  CLI::App* app = cmds.add(
      "inspect",
      "Print the tensors of a weight file (safetensors, or a torch.save .pt/.pth zip "
      "checkpoint; nested dicts are shown with keys joined by '.'): key, dtype, shape, "
      "parameter count and bytes, then totals per dtype.",
      [in] { return run_inspect(*in); });
  app->add_option("FILE", in->file, "weight file (.safetensors, .pt, .pth)")->required();
  app->add_option("--max-keys", in->max_keys, "print at most this many keys (0: all)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--filter", in->filter, "only keys containing this substring");

  auto cf = std::make_shared<ConfigCommandArgs>();
  app = cmds.add("config",
                 "Print the resolved, validated config (YAML) of a config file with --set "
                 "overrides applied.",
                 [cf] { return run_config(*cf); });
  add_config_options(*app, cf->config, "config YAML file (e.g. configs/wan_causal_dmd.yaml)");
  app->add_option("--out", cf->out, "also write the resolved config to this file");
  app->add_flag("--no-validate", cf->no_validate, "print without running validate()");
  app->add_flag("--list-keys", cf->list_keys, "list every key with its type, default and doc");
}

}  // namespace causvid::cli
