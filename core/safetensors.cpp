// core/safetensors.cpp: see safetensors.h.
#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "core/fs.h"

namespace causvid::core {

using json = nlohmann::json;

torch::ScalarType safetensors_dtype(const std::string& name) {
  static const std::map<std::string, torch::ScalarType> kMap = {
      {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
      {"F64", torch::kFloat64}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
      {"I16", torch::kInt16},   {"I8", torch::kInt8},     {"U8", torch::kUInt8},
      {"BOOL", torch::kBool},   {"F8_E4M3", torch::kFloat8_e4m3fn},
      {"F8_E5M2", torch::kFloat8_e5m2}};
  auto it = kMap.find(name);
  TORCH_CHECK(it != kMap.end(), "safetensors: unsupported dtype '", name,
              "' (want one of F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL F8_E4M3 F8_E5M2)");
  return it->second;
}

std::string safetensors_dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "F32";
    case torch::kFloat16: return "F16";
    case torch::kBFloat16: return "BF16";
    case torch::kFloat8_e4m3fn: return "F8_E4M3";
    case torch::kFloat8_e5m2: return "F8_E5M2";
    case torch::kFloat64: return "F64";
    case torch::kInt64: return "I64";
    case torch::kInt32: return "I32";
    case torch::kInt16: return "I16";
    case torch::kInt8: return "I8";
    case torch::kUInt8: return "U8";
    case torch::kBool: return "BOOL";
    default: TORCH_CHECK(false, "safetensors: cannot store dtype ", dtype);
  }
}

namespace {

// One header entry {"dtype", "shape", "data_offsets"}, checked against the data section.
TensorInfo parse_entry(const std::string& path, const std::string& key, const json& e,
                       uint64_t data_size) {
  TORCH_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") &&
                  e.contains("data_offsets"),
              path, ": entry '", key, "' lacks dtype/shape/data_offsets");
  TORCH_CHECK(e["dtype"].is_string(), path, ": '", key, "'.dtype is not a string");
  TensorInfo info;
  info.dtype_name = e["dtype"].get<std::string>();
  try {
    info.dtype = safetensors_dtype(info.dtype_name);
  } catch (const c10::Error&) {
    TORCH_CHECK(false, path, ": tensor '", key, "' has unsupported dtype ", info.dtype_name);
  }
  TORCH_CHECK(e["shape"].is_array(), path, ": '", key, "'.shape is not an array");
  uint64_t numel = 1;
  for (const auto& d : e["shape"]) {
    TORCH_CHECK(d.is_number_integer() && d.get<int64_t>() >= 0, path, ": '", key,
                "'.shape has a non-integer or negative dimension");
    const auto dim = d.get<uint64_t>();
    TORCH_CHECK(dim == 0 || numel <= (uint64_t(1) << 62) / dim, path, ": '", key,
                "'.shape overflows");
    numel *= dim;
    info.shape.push_back(static_cast<int64_t>(dim));
  }
  const auto& off = e["data_offsets"];
  TORCH_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                  off[1].is_number_unsigned(),
              path, ": '", key, "'.data_offsets must be [begin, end]");
  info.begin = off[0].get<uint64_t>();
  info.end = off[1].get<uint64_t>();
  TORCH_CHECK(info.begin <= info.end && info.end <= data_size, path, ": '", key,
              "' data_offsets [", info.begin, ", ", info.end, "] outside the data section of ",
              data_size, " bytes (truncated file?)");
  const uint64_t want = numel * c10::elementSize(info.dtype);
  TORCH_CHECK(info.end - info.begin == want, path, ": '", key, "' has ", info.end - info.begin,
              " bytes, shape and dtype want ", want);
  return info;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  TORCH_CHECK(fd >= 0, path, ": cannot open safetensors file: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    TORCH_CHECK(false, path, ": cannot stat: ", std::strerror(errno));
  }
  map_size_ = static_cast<size_t>(st.st_size);
  if (map_size_ < 8) {
    ::close(fd);
    TORCH_CHECK(false, path, ": not a safetensors file (", map_size_,
                " bytes; want at least the 8-byte header length)");
  }
  map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  TORCH_CHECK(map_ != MAP_FAILED, path, ": mmap failed: ", std::strerror(errno));
  try {
    const auto* bytes = static_cast<const uint8_t*>(map_);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
    TORCH_CHECK(header_len <= map_size_ - 8, path, ": header length ", header_len,
                " exceeds file size ", map_size_, " (truncated or not safetensors)");
    data_start_ = 8 + header_len;
    json header;
    std::string duplicate;  // a tensor name given twice (the JSON parser would keep one)
    std::set<std::string> names;
    json::parser_callback_t on = [&](int depth, json::parse_event_t event, json& parsed) {
      if (depth == 1 && event == json::parse_event_t::key && duplicate.empty() &&
          !names.insert(parsed.get<std::string>()).second)
        duplicate = parsed.get<std::string>();
      return true;
    };
    try {
      header = json::parse(bytes + 8, bytes + 8 + header_len, on);
    } catch (const std::exception& e) {
      TORCH_CHECK(false, path, ": header is not valid JSON: ", e.what());
    }
    TORCH_CHECK(duplicate.empty(), path, ": tensor '", duplicate, "' is listed twice in the header");
    TORCH_CHECK(header.is_object(), path, ": header is not a JSON object");
    const uint64_t data_size = map_size_ - data_start_;
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        TORCH_CHECK(it->is_object(), path, ": __metadata__ is not an object");
        for (auto m = it->begin(); m != it->end(); ++m) {
          TORCH_CHECK(m->is_string(), path, ": __metadata__.", m.key(), " is not a string");
          metadata_[m.key()] = m->get<std::string>();
        }
        continue;
      }
      infos_[it.key()] = parse_entry(path, it.key(), *it, data_size);
    }
    // Two tensors over the same bytes: a crafted or damaged header (the reference writer
    // lays them out back to back). Empty tensors take no bytes.
    std::vector<std::pair<uint64_t, const std::string*>> starts;
    for (const auto& kv : infos_)
      if (kv.second.end > kv.second.begin) starts.push_back({kv.second.begin, &kv.first});
    std::sort(starts.begin(), starts.end());
    for (size_t i = 1; i < starts.size(); ++i) {
      const auto& prev = infos_.at(*starts[i - 1].second);
      TORCH_CHECK(starts[i].first >= prev.end, path, ": tensors '", *starts[i - 1].second,
                  "' [", prev.begin, ", ", prev.end, ") and '", *starts[i].second,
                  "' overlap in the data section");
    }
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ && map_ != MAP_FAILED) ::munmap(map_, map_size_);
}

std::vector<std::string> SafetensorsFile::keys() const {
  std::vector<std::string> out;
  for (const auto& kv : infos_) out.push_back(kv.first);
  return out;
}

const TensorInfo& SafetensorsFile::info(const std::string& key) const {
  auto it = infos_.find(key);
  TORCH_CHECK(it != infos_.end(), path_, ": no tensor named '", key, "'");
  return it->second;
}

torch::Tensor SafetensorsFile::tensor(const std::string& key) const {
  const TensorInfo& ti = info(key);
  auto out = torch::empty(ti.shape, torch::TensorOptions().dtype(ti.dtype));
  const auto* src = static_cast<const uint8_t*>(map_) + data_start_ + ti.begin;
  if (ti.end > ti.begin) std::memcpy(out.data_ptr(), src, ti.end - ti.begin);
  return out;
}

torch::Tensor SafetensorsFile::read_range(const std::string& key, int64_t begin,
                                          int64_t end) const {
  const TensorInfo& ti = info(key);
  const int64_t es = static_cast<int64_t>(c10::elementSize(ti.dtype));
  const int64_t n = static_cast<int64_t>(ti.end - ti.begin) / es;
  TORCH_CHECK(0 <= begin && begin <= end && end <= n, path_, ": tensor '", key, "' has ", n,
              " elements, range [", begin, ", ", end, ") asked for");
  auto out = torch::empty({end - begin}, torch::TensorOptions().dtype(ti.dtype));
  const auto* src = static_cast<const uint8_t*>(map_) + data_start_ + ti.begin + begin * es;
  if (end > begin) std::memcpy(out.data_ptr(), src, (end - begin) * es);
  return out;
}

TensorMap SafetensorsFile::all() const {
  TensorMap out;
  for (const auto& kv : infos_) out[kv.first] = tensor(kv.first);
  return out;
}

TensorMap load_safetensors(const std::string& path) { return SafetensorsFile(path).all(); }

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  std::vector<torch::Tensor> blobs;
  uint64_t offset = 0;
  for (const auto& kv : tensors) {
    TORCH_CHECK(kv.second.defined(), "save_safetensors ", path, ": tensor '", kv.first,
                "' is undefined");
    auto t = kv.second.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = t.numel() * t.element_size();
    header[kv.first] = {{"dtype", safetensors_dtype_name(t.scalar_type())},
                        {"shape", t.sizes().vec()},
                        {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    blobs.push_back(t);
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string hs = header.dump();
  while (hs.size() % 8) hs.push_back(' ');  // align the data section like the reference writer
  AtomicFile out(path);
  uint64_t n = hs.size();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  out.write(len, 8);
  out.write(hs.data(), hs.size());
  for (const auto& t : blobs) out.write(t.data_ptr(), t.numel() * t.element_size());
  out.commit();
}

TensorMap load_sharded_safetensors(const std::string& index_path) {
  std::ifstream in(index_path);
  TORCH_CHECK(in, index_path, ": cannot open the shard index");
  json index;
  try {
    index = json::parse(in);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, index_path, ": not valid JSON: ", e.what());
  }
  TORCH_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
              index_path, ": no \"weight_map\" object (want a huggingface shard index)");
  const auto dir = std::filesystem::path(index_path).parent_path();
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
    TORCH_CHECK(it->is_string(), index_path, ": weight_map['", it.key().substr(0, 200),
                "'] is not a file name");
    const std::string shard = it->get<std::string>();
    // A shard is a file beside the index: a plain name, never a path out of the folder.
    TORCH_CHECK(!shard.empty() && shard.size() <= 255 && shard != "." && shard != ".." &&
                    shard.find('/') == std::string::npos && shard.find('\0') == std::string::npos,
                index_path, ": weight_map['", it.key().substr(0, 200), "'] names shard '",
                shard.substr(0, 200), "', want a file name beside the index");
    by_shard[shard].push_back(it.key());
  }
  TensorMap out;
  for (const auto& [shard, keys] : by_shard) {
    const auto file = (dir / shard).string();
    std::error_code ec;
    TORCH_CHECK(std::filesystem::is_regular_file(file, ec), index_path, ": shard '", shard,
                "' (holding '", keys.front(), "' and ", keys.size() - 1,
                " more keys) does not exist at ", file);
    SafetensorsFile f(file);
    for (const auto& k : keys) {
      TORCH_CHECK(f.contains(k), index_path, ": key '", k, "' is mapped to shard '", shard,
                  "', which does not hold it");
      out[k] = f.tensor(k);
    }
  }
  return out;
}

void save_sharded_safetensors(const std::string& dir, const std::string& base,
                              const TensorMap& tensors, uint64_t max_shard_bytes) {
  std::vector<TensorMap> shards(1);
  uint64_t size = 0, total = 0;
  for (const auto& [k, t] : tensors) {
    const uint64_t n = t.numel() * t.element_size();
    if (size > 0 && size + n > max_shard_bytes) {
      shards.emplace_back();
      size = 0;
    }
    shards.back()[k] = t;
    size += n;
    total += n;
  }
  std::filesystem::create_directories(dir);
  if (shards.size() == 1) {
    save_safetensors((std::filesystem::path(dir) / (base + ".safetensors")).string(), tensors);
    return;
  }
  json weight_map = json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    const std::string file = base + name;
    save_safetensors((std::filesystem::path(dir) / file).string(), shards[i]);
    for (const auto& kv : shards[i]) weight_map[kv.first] = file;
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic((std::filesystem::path(dir) / (base + ".safetensors.index.json")).string(),
                    index.dump(2));
}

}  // namespace causvid::core
