// data/shards.cpp: latent shards (ours and CausVid's .pt) and the LMDB build of
// create_lmdb_iterative.py. See shards.h.
#include "data/shards.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/fs.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "core/tensor_io.h"
#include "data/array_lmdb.h"
#include "data/lmdb_verify.h"

namespace causvid::data {
namespace fs = std::filesystem;

namespace {

constexpr const char* kShardFormat = "causvid-shard";
constexpr const char* kLatentsKey = "latents";

bool is_shard_name(const fs::path& p) {
  const auto ext = p.extension().string();
  return ext == ".pt" || ext == ".pth" || ext == ".safetensors";
}

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

Shard read_our_shard(const std::string& path) {
  core::SafetensorsFile f(path);
  const auto& meta = f.metadata();
  auto fmt = meta.find("format");
  TORCH_CHECK(fmt != meta.end() && fmt->second == kShardFormat, path,
              ": safetensors without metadata format=\"", kShardFormat,
              "\": not a latent shard (want a tensor \"latents\" and metadata \"prompts\")");
  TORCH_CHECK(f.contains(kLatentsKey), path, ": no tensor \"latents\" in the shard");
  auto pm = meta.find("prompts");
  TORCH_CHECK(pm != meta.end(), path, ": no metadata \"prompts\" in the shard");
  Shard s;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(pm->second);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, path, ": metadata \"prompts\" is not JSON: ", e.what());
  }
  TORCH_CHECK(j.is_array(), path, ": metadata \"prompts\": got ", j.type_name(),
              ", want a JSON array of strings");
  for (const auto& p : j) {
    TORCH_CHECK(p.is_string(), path, ": metadata \"prompts\": got a ", p.type_name(),
                " entry, want strings");
    s.prompts.push_back(p.get<std::string>());
  }
  s.latents = f.tensor(kLatentsKey);
  TORCH_CHECK(s.latents.dim() >= 1 && s.latents.size(0) == static_cast<int64_t>(s.prompts.size()),
              path, ": \"latents\" ", shape_str(s.latents.sizes()), " has ",
              s.latents.dim() ? s.latents.size(0) : 0, " rows but metadata lists ",
              s.prompts.size(), " prompts");
  return s;
}

Shard read_causvid_shard(const std::string& path) {
  // torch.save({prompt: tensor[1, ...]}) as generate_ode_pairs.py / compute_vae_latent.py.
  auto obj = core::load_torch_checkpoint(path);
  TORCH_CHECK(obj.isGenericDict(), path, ": got a ", obj.tagKind(),
              ", want a dict {prompt: tensor} (CausVid's shard layout)");
  Shard s;
  std::vector<torch::Tensor> rows;
  for (const auto& kv : obj.toGenericDict()) {
    TORCH_CHECK(kv.key().isString(), path, ": a key of type ", kv.key().tagKind(),
                ", want prompt strings");
    const std::string prompt = kv.key().toStringRef();
    TORCH_CHECK(kv.value().isTensor(), path, ": value of prompt '", prompt, "' is a ",
                kv.value().tagKind(), ", want a tensor");
    auto t = kv.value().toTensor();
    // CausVid concatenates the values along axis 0 and pairs one prompt per value, so each
    // value must hold exactly one row.
    TORCH_CHECK(t.dim() >= 2 && t.size(0) == 1, path, ": value of prompt '", prompt, "' is ",
                shape_str(t.sizes()), ", want [1, ...] (one row with its batch dim)");
    s.prompts.push_back(prompt);
    rows.push_back(t[0]);
  }
  TORCH_CHECK(!rows.empty(), path, ": empty dict, no rows");
  for (size_t i = 1; i < rows.size(); ++i)
    TORCH_CHECK(rows[i].sizes() == rows[0].sizes(), path, ": row of prompt '", s.prompts[i],
                "' is ", shape_str(rows[i].sizes()), ", want ", shape_str(rows[0].sizes()),
                " like the first row");
  s.latents = torch::stack(rows);
  return s;
}

}  // namespace

Shard read_shard(const std::string& path) {
  TORCH_CHECK(core::file_exists(path), path, ": shard not found");
  switch (core::detect_weight_format(path)) {
    case core::WeightFormat::kSafetensors:
      return read_our_shard(path);
    case core::WeightFormat::kTorchZip:
      return read_causvid_shard(path);
    default:
      TORCH_CHECK(false, path, ": not a shard (want a causvid-shard .safetensors or a ",
                  "torch.save zip .pt holding {prompt: tensor})");
  }
}

void write_shard(const std::string& path, const std::vector<std::string>& prompts,
                 const torch::Tensor& latents, torch::ScalarType dtype) {
  TORCH_CHECK(latents.dim() >= 1 && latents.size(0) == static_cast<int64_t>(prompts.size()), path,
              ": latents ", shape_str(latents.sizes()), " vs ", prompts.size(),
              " prompts, want one row per prompt");
  nlohmann::json j = prompts;
  core::save_safetensors(path,
                         {{kLatentsKey, latents.detach().to(torch::kCPU, dtype).contiguous()}},
                         {{"format", kShardFormat}, {"version", "1"}, {"prompts", j.dump()}});
}

std::vector<std::string> list_shards(const std::vector<std::string>& inputs) {
  TORCH_CHECK(!inputs.empty(), "--shards: no shard folder or file given");
  std::vector<std::string> out;
  for (const auto& in : inputs) {
    std::error_code ec;
    auto st = fs::status(in, ec);
    TORCH_CHECK(!ec && fs::exists(st), in, ": shard folder or file not found");
    if (fs::is_directory(st)) {
      std::vector<std::string> files;
      for (const auto& e : fs::directory_iterator(in))
        if (e.is_regular_file() && is_shard_name(e.path())) files.push_back(e.path().string());
      TORCH_CHECK(!files.empty(), in,
                  ": no shard files (*.pt, *.pth, *.safetensors) in the folder");
      std::sort(files.begin(), files.end());
      out.insert(out.end(), files.begin(), files.end());
    } else {
      out.push_back(in);
    }
  }
  return out;
}

LmdbBuildStats build_lmdb_from_shards(
    const std::vector<std::string>& shard_files, const std::string& out,
    const LmdbBuildOptions& opts, const std::function<void(int64_t, int64_t, int64_t)>& progress) {
  TORCH_CHECK(!shard_files.empty(), out, ": no shards to build from");
  TORCH_CHECK(!out.empty(), "--out: required");
  const bool exists = fs::exists(out);
  TORCH_CHECK(!exists || opts.overwrite, out, ": already exists (pass --overwrite to replace it)");
  const std::string tmp = out + ".tmp." + std::to_string(::getpid());
  {
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }
  LmdbBuildStats st;
  try {
    std::set<std::string> seen;  // CausVid's seen_prompts: exact strings, across shards
    std::vector<int64_t> row_shape;
    std::string row_shape_from;
    {
      ArrayLmdbWriter w(tmp);
      for (const auto& file : shard_files) {
        Shard s = read_shard(file);
        ++st.shards;
        st.rows_read += static_cast<int64_t>(s.prompts.size());
        std::vector<int64_t> keep;
        std::vector<std::string> kept_prompts;
        for (size_t i = 0; i < s.prompts.size(); ++i) {
          if (!seen.insert(s.prompts[i]).second) {
            ++st.duplicates;
            continue;
          }
          keep.push_back(static_cast<int64_t>(i));
          kept_prompts.push_back(s.prompts[i]);
        }
        auto rs = s.latents.sizes().slice(1).vec();
        if (row_shape_from.empty()) {
          row_shape = rs;
          row_shape_from = file;
        }
        TORCH_CHECK(rs == row_shape, file, ": rows are ", shape_str(rs), ", want ",
                    shape_str(row_shape), " like the rows of ", row_shape_from);
        if (!keep.empty()) {
          auto rows = s.latents.index_select(0, torch::tensor(keep, torch::kLong));
          w.put_tensor_rows(opts.latents_array, st.rows_written, rows, torch::kHalf);
          w.put_string_rows(opts.prompts_array, st.rows_written, kept_prompts);
          st.rows_written += static_cast<int64_t>(keep.size());
        }
        if (progress)
          progress(st.shards, static_cast<int64_t>(shard_files.size()), st.rows_written);
      }
      TORCH_CHECK(st.rows_written > 0, out, ": the shards hold no rows");
      st.latents_shape = {st.rows_written};
      st.latents_shape.insert(st.latents_shape.end(), row_shape.begin(), row_shape.end());
      w.finish({{opts.latents_array, st.latents_shape}, {opts.prompts_array, {st.rows_written}}});
    }
    if (exists) fs::remove_all(out);
    fs::rename(tmp, out);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return st;
}

std::string lmdb_info(const std::string& path) {
  TORCH_CHECK(fs::is_directory(path), path, ": LMDB folder not found");
  check_array_lmdb(path);  // a corrupt file: an error naming it, not a signal in liblmdb
  ArrayLmdb db(path);
  std::ostringstream o;
  o << path << "\n";
  auto arrays = db.arrays();
  TORCH_CHECK(!arrays.empty(), path,
              ": no \"<array>_shape\" key: not a CausVid array LMDB (want e.g. latents_shape)");
  for (const auto& a : arrays) {
    auto shape = db.shape(a);
    o << "  " << a << ": shape " << shape_str(shape) << ", rows " << shape.at(0);
    if (shape.size() == 1) {
      o << ", strings";
    } else {
      // Decoding row 0 checks its byte count against the shape (a short row is an error).
      if (shape.at(0) > 0) db.tensor_row(a, 0);
      int64_t n = 1;
      for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
      o << ", float16 rows of " << n * 2 << " bytes";
      if (shape.size() == 6) o << " [S, F, C, H, W] (ODE trajectory points)";
      if (shape.size() == 5) o << " [F, C, H, W] (clean latents)";
    }
    o << "\n";
  }
  if (db.has_array("prompts") && db.rows("prompts") > 0)
    o << "  first prompt: " << db.string_row("prompts", 0) << "\n";
  return o.str();
}

}  // namespace causvid::data

namespace causvid::data {

int64_t ShardPlan::items_to_do(int rank, int world_size, const std::string& dir,
                              const std::string& prefix) const {
  int64_t n = 0;
  for (int64_t k : shards_of(rank, world_size))
    if (!core::file_exists(shard_path(dir, prefix, k))) n += end(k) - begin(k);
  return n;
}

std::vector<int64_t> ShardPlan::shards_of(int rank, int world_size) const {
  TORCH_CHECK(shard_size >= 1, "--shard-size: got ", shard_size, ", want >= 1");
  std::vector<int64_t> out;
  for (int64_t k = rank; k < num_shards(); k += world_size) out.push_back(k);
  return out;
}

std::string shard_path(const std::string& dir, const std::string& prefix, int64_t k) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "_%06ld.safetensors", static_cast<long>(k));
  return (fs::path(dir) / (prefix + buf)).string();
}

}  // namespace causvid::data
