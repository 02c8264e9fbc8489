// core/tensor_io.cpp: see tensor_io.h. Format sniffing, flattening, the public loaders and
// helpers. The torch.save reader is torch_zip.cpp + torch_unpickler*.cpp (torch_pickle.h), the
// writer torch_pickler.cpp.
#include "core/tensor_io.h"

#include <c10/util/strides.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <sstream>

#include "core/torch_pickle.h"

namespace causvid::core {
namespace {

using detail::CheckpointReader;
using detail::MappedFile;
using detail::mapped_storage;
using detail::rd64;

// ------------------------------------------------------------------ format sniffing

WeightFormat sniff_file(const std::string& path, size_t* file_size) {
  int fd = ::open(path.c_str(), O_RDONLY);
  TORCH_CHECK(fd >= 0, path, ": cannot open weight file: ", std::strerror(errno));
  struct stat st {};
  const bool ok = ::fstat(fd, &st) == 0;
  uint8_t head[16] = {0};
  ssize_t got = ok && S_ISREG(st.st_mode) ? ::pread(fd, head, sizeof(head), 0) : -1;
  int err = errno;
  ::close(fd);
  TORCH_CHECK(ok, path, ": cannot stat: ", std::strerror(err));
  TORCH_CHECK(S_ISREG(st.st_mode), path, ": not a regular file (want a weight file)");
  TORCH_CHECK(got >= 0, path, ": cannot read: ", std::strerror(err));
  if (file_size) *file_size = static_cast<size_t>(st.st_size);
  const uint8_t* b = head;
  // Zip local header or (empty archive) end-of-central-directory signature.
  if (got >= 4 && b[0] == 'P' && b[1] == 'K' &&
      ((b[2] == 3 && b[3] == 4) || (b[2] == 5 && b[3] == 6)))
    return WeightFormat::kTorchZip;
  // The legacy format is a pickle stream: PROTO 2.
  if (got >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5) return WeightFormat::kTorchLegacy;
  // u64 header length that fits the file, then the JSON header's '{'.
  if (got >= 9 && b[8] == '{') {
    const uint64_t len = rd64(b);
    if (len >= 2 && len <= uint64_t(st.st_size) - 8) return WeightFormat::kSafetensors;
  }
  return WeightFormat::kUnknown;
}

std::string hex_head(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return "";
  uint8_t b[8];
  ssize_t got = ::pread(fd, b, sizeof(b), 0);
  ::close(fd);
  std::ostringstream os;
  for (ssize_t i = 0; i < got; ++i) {
    static const char* kHex = "0123456789abcdef";
    os << kHex[b[i] >> 4] << kHex[b[i] & 15];
  }
  return os.str();
}

// ------------------------------------------------------------------ flattening

constexpr int kMaxDepth = 500;

std::string key_string(const c10::IValue& k) {
  if (k.isString()) return k.toStringRef();
  if (k.isInt()) return std::to_string(k.toInt());
  if (k.isBool()) return k.toBool() ? "True" : "False";
  return ivalue_summary(k, 200);
}

void flatten_rec(const c10::IValue& v, const std::string& prefix, TensorMap& out,
                 NamedValues* others, int depth, int64_t& visited) {
  TORCH_CHECK(depth < kMaxDepth, "flatten_tensors: nesting deeper than ", kMaxDepth, " levels at '",
              prefix, "' (cyclic or corrupt checkpoint?)");
  // Shared sub-containers are visited once per path; a corrupt pickle could make that
  // exponential.
  TORCH_CHECK(++visited < (int64_t(1) << 26),
              "flatten_tensors: more than 2^26 entries "
              "(shared containers repeated exponentially? corrupt checkpoint?)");
  auto join = [&](const std::string& k) { return prefix.empty() ? k : prefix + "." + k; };
  if (v.isTensor()) {
    TORCH_CHECK(out.emplace(prefix, v.toTensor()).second, "flatten_tensors: key '", prefix,
                "' appears twice after joining nested keys with '.'");
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict())
      flatten_rec(kv.value(), join(key_string(kv.key())), out, others, depth + 1, visited);
  } else if (v.isList()) {
    const auto l = v.toListRef();
    for (size_t i = 0; i < l.size(); ++i)
      flatten_rec(l[i], join(std::to_string(i)), out, others, depth + 1, visited);
  } else if (v.isTuple()) {
    const auto& e = v.toTupleRef().elements();
    for (size_t i = 0; i < e.size(); ++i)
      flatten_rec(e[i], join(std::to_string(i)), out, others, depth + 1, visited);
  } else if (others) {
    others->emplace_back(prefix, v);
  }
}
}  // namespace

// ------------------------------------------------------------------ public API

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::kSafetensors:
      return "safetensors";
    case WeightFormat::kTorchZip:
      return "torch zip (torch.save)";
    case WeightFormat::kTorchLegacy:
      return "torch legacy (pre-1.6 torch.save)";
    default:
      return "unknown";
  }
}

WeightFormat detect_weight_format(const std::string& path) { return sniff_file(path, nullptr); }

c10::IValue load_torch_checkpoint(const std::string& path, const TorchLoadOptions& opt) {
  size_t size = 0;
  const WeightFormat f = sniff_file(path, &size);
  TORCH_CHECK(f != WeightFormat::kTorchLegacy, path,
              ": legacy (non-zip) torch.save format is not supported; re-save it in Python "
              "with torch.save(torch.load(path), new_path) (zip format, torch >= 1.6)");
  TORCH_CHECK(f == WeightFormat::kTorchZip, path, ": not a torch.save zip archive (", size,
              " bytes, first bytes ", hex_head(path),
              "; want a .pt/.pth zip file "
              "starting with 'PK')");
  CheckpointReader reader(path, opt);
  return reader.load();
}

TensorMap flatten_tensors(const c10::IValue& obj, const std::string& prefix, NamedValues* others) {
  TensorMap out;
  int64_t visited = 0;
  flatten_rec(obj, prefix, out, others, 0, visited);
  return out;
}

namespace {

// Safetensors with tensors viewing the map (SafetensorsFile validates the header; a tensor
// whose offset is not a multiple of its element size is copied instead).
TensorMap load_safetensors_mapped(const std::string& path) {
  SafetensorsFile sf(path);
  auto f = std::make_shared<MappedFile>(path);
  TORCH_CHECK(f->size() >= 8, path, ": changed while reading");
  const uint64_t data_start = 8 + rd64(f->data());
  TensorMap out;
  for (const auto& key : sf.keys()) {
    const TensorInfo& info = sf.info(key);
    const uint64_t off = data_start + info.begin, nbytes = info.end - info.begin;
    TORCH_CHECK(off <= f->size() && nbytes <= f->size() - off, path, ": changed while reading");
    if (off % c10::elementSize(info.dtype) != 0) {
      out[key] = sf.tensor(key);
      continue;
    }
    auto t = torch::empty({0}, torch::TensorOptions().dtype(info.dtype));
    t.set_(mapped_storage(f, off, nbytes), 0, info.shape, c10::contiguous_strides(info.shape));
    out[key] = t;
  }
  return out;
}

}  // namespace

TensorMap load_weights(const std::string& path, const TorchLoadOptions& opt) {
  const std::string kIndex = ".safetensors.index.json";
  if (path.size() > kIndex.size() && path.compare(path.size() - kIndex.size(), kIndex.size(), kIndex) == 0)
    return load_sharded_safetensors(path);
  size_t size = 0;
  const WeightFormat f = sniff_file(path, &size);
  switch (f) {
    case WeightFormat::kSafetensors:
      return opt.mmap ? load_safetensors_mapped(path) : load_safetensors(path);
    case WeightFormat::kTorchZip:
    case WeightFormat::kTorchLegacy: {  // the latter throws a clear error
      c10::IValue obj = load_torch_checkpoint(path, opt);
      TensorMap out;
      try {
        out = flatten_tensors(obj);
      } catch (const c10::Error& e) {
        TORCH_CHECK(false, path, ": ", e.what_without_backtrace());
      }
      return out;
    }
    default:
      TORCH_CHECK(false, path, ": not a supported weight file (", size, " bytes",
                  size ? ", first bytes " + hex_head(path) : std::string(),
                  "; want safetensors or a torch.save zip archive .pt/.pth)");
  }
  return {};
}


void save_torch_checkpoint(const std::string& path, const TensorMap& flat) {
  save_torch_checkpoint(path, tensor_dict(flat));
}

c10::IValue tensor_dict(const TensorMap& tensors) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::TensorType::get());
  for (const auto& kv : tensors) d.insert(kv.first, kv.second);
  return c10::IValue(d);
}

c10::IValue nested_dict(const std::vector<std::pair<std::string, c10::IValue>>& items) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  for (const auto& kv : items) d.insert_or_assign(kv.first, kv.second);
  return c10::IValue(d);
}

std::string ivalue_summary(const c10::IValue& v, size_t max_chars) {
  std::ostringstream os;
  std::function<void(const c10::IValue&, int)> rec = [&](const c10::IValue& x, int depth) {
    if (os.tellp() > static_cast<std::streamoff>(max_chars) || depth > 8) {
      os << "...";
      return;
    }
    if (x.isNone())
      os << "None";
    else if (x.isBool())
      os << (x.toBool() ? "True" : "False");
    else if (x.isInt())
      os << x.toInt();
    else if (x.isDouble())
      os << x.toDouble();
    else if (x.isString())
      os << "'" << x.toStringRef() << "'";
    else if (x.isTensor()) {
      const auto& t = x.toTensor();
      os << "tensor(" << t.scalar_type() << ", " << t.sizes() << ")";
    } else if (x.isList() || x.isTuple()) {
      const bool tup = x.isTuple();
      const auto e = tup ? x.toTupleRef().elements().vec() : x.toListRef().vec();
      os << (tup ? "(" : "[");
      for (size_t i = 0; i < e.size(); ++i) {
        if (i) os << ", ";
        if (os.tellp() > static_cast<std::streamoff>(max_chars)) {
          os << "...";
          break;
        }
        rec(e[i], depth + 1);
      }
      os << (tup ? ")" : "]");
    } else if (x.isGenericDict()) {
      os << "{";
      bool first = true;
      for (const auto& kv : x.toGenericDict()) {
        if (!first) os << ", ";
        first = false;
        if (os.tellp() > static_cast<std::streamoff>(max_chars)) {
          os << "...";
          break;
        }
        rec(kv.key(), depth + 1);
        os << ": ";
        rec(kv.value(), depth + 1);
      }
      os << "}";
    } else {
      os << "<" << x.tagKind() << ">";
    }
  };
  rec(v, 0);
  std::string s = os.str();
  if (s.size() > max_chars + 3) s = s.substr(0, max_chars) + "...";
  return s;
}

}  // namespace causvid::core