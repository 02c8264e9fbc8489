// core/torch_pickler.cpp: save_torch_checkpoint (tensor_io.h), a port of
// torch/serialization.py _save: PickleWriter emits data.pkl with pickle protocol 2 as torch.save
// does, and caffe2::serialize::PyTorchStreamWriter writes the zip records.
#include <unordered_map>

#include "core/fs.h"
#include "core/torch_pickle.h"

namespace causvid::core {
namespace {

using detail::storage_class_name;
constexpr int kMaxDepth = 500;

// ------------------------------------------------------------------ pickler

// Writes data.pkl the way Python's torch.save does (protocol 2) and collects the storages.
class PickleWriter {
 public:
  struct StorageRec {
    c10::Storage storage;
    torch::ScalarType dtype;
    std::string key;
  };

  explicit PickleWriter(std::string path) : path_(std::move(path)) { out_ += "\x80\x02"; }
  void finish() { out_.push_back('.'); }
  const std::string& bytes() const { return out_; }
  const std::vector<StorageRec>& storages() const { return storages_; }

  void value(const c10::IValue& v, int depth) {
    TORCH_CHECK(depth < kMaxDepth, path_, ": cannot save: nesting deeper than ", kMaxDepth,
                " levels (cyclic?)");
    if (v.isTensor()) {
      tensor(v.toTensor());
    } else if (v.isGenericDict()) {
      out_.push_back('}');
      size_t batch = 0;
      for (const auto& kv : v.toGenericDict()) {
        const auto& k = kv.key();
        TORCH_CHECK(k.isString() || k.isInt() || k.isBool() || k.isDouble(), path_,
                    ": cannot save a dict key of type ", k.tagKind(),
                    " (want str, int, float or bool)");
        if (batch == 0) out_.push_back('(');
        value(k, depth + 1);
        value(kv.value(), depth + 1);
        if (++batch == 1000) out_.push_back('u'), batch = 0;
      }
      if (batch) out_.push_back('u');
    } else if (v.isList()) {
      out_.push_back(']');
      const auto l = v.toListRef();
      if (!l.empty()) {
        out_.push_back('(');
        for (const auto& e : l) value(e, depth + 1);
        out_.push_back('e');
      }
    } else if (v.isTuple()) {
      const auto& e = v.toTupleRef().elements();
      if (e.empty()) {
        out_.push_back(')');
        return;
      }
      if (e.size() > 3) out_.push_back('(');
      for (const auto& x : e) value(x, depth + 1);
      out_.push_back(e.size() == 1   ? '\x85'
                     : e.size() == 2 ? '\x86'
                     : e.size() == 3 ? '\x87'
                                     : 't');
    } else if (v.isString()) {
      str(v.toStringRef());
    } else if (v.isBool()) {
      out_.push_back(v.toBool() ? '\x88' : '\x89');
    } else if (v.isInt()) {
      integer(v.toInt());
    } else if (v.isDouble()) {
      const double d = v.toDouble();
      uint64_t bits;
      std::memcpy(&bits, &d, 8);
      out_.push_back('G');
      for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>(bits >> (8 * i)));
    } else if (v.isNone()) {
      out_.push_back('N');
    } else {
      TORCH_CHECK(false, path_, ": cannot save a value of type ", v.tagKind(),
                  " (want dict, list, tuple, tensor, int, float, bool, str or None)");
    }
  }

 private:
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      out_.push_back('K');
      out_.push_back(static_cast<char>(v));
    } else if (v >= 0 && v < 65536) {
      out_.push_back('M');
      le(uint64_t(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out_.push_back('J');
      le(uint64_t(uint32_t(int32_t(v))), 4);
    } else {
      out_ += "\x8a\x08";
      le(uint64_t(v), 8);
    }
  }
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>(v >> (8 * i)));
  }
  void str(const std::string& s) {
    out_.push_back('X');
    le(s.size(), 4);
    TORCH_CHECK(s.size() < (uint64_t(1) << 32), path_, ": string too long to save");
    out_ += s;
  }
  void memo_ref(uint32_t idx, bool put) {
    if (idx < 256) {
      out_.push_back(put ? 'q' : 'h');
      out_.push_back(static_cast<char>(idx));
    } else {
      out_.push_back(put ? 'r' : 'j');
      le(idx, 4);
    }
  }
  // GLOBAL module\nname\n, memoized so each name is spelled once.
  void global(const std::string& module, const std::string& name) {
    const std::string full = module + "\n" + name + "\n";
    auto it = globals_.find(full);
    if (it != globals_.end()) return memo_ref(it->second, false);
    out_.push_back('c');
    out_ += full;
    const uint32_t idx = next_memo_++;
    globals_[full] = idx;
    memo_ref(idx, true);
  }
  void int_tuple(c10::IntArrayRef v) {
    if (v.empty()) {
      out_.push_back(')');
      return;
    }
    if (v.size() > 3) out_.push_back('(');
    for (auto x : v) integer(x);
    out_.push_back(v.size() == 1 ? '\x85' : v.size() == 2 ? '\x86' : v.size() == 3 ? '\x87' : 't');
  }

  void tensor(torch::Tensor t) {
    TORCH_CHECK(t.defined(), path_, ": cannot save an undefined tensor");
    t = t.detach();
    TORCH_CHECK(t.layout() == torch::kStrided && !t.is_quantized(), path_, ": cannot save a ",
                t.layout(), " tensor (want dense strided)");
    if (!t.device().is_cpu()) t = t.cpu();
    if (t.is_conj()) t = t.resolve_conj();
    if (t.is_neg()) t = t.resolve_neg();
    const char* cls = storage_class_name(t.scalar_type());
    TORCH_CHECK(cls != nullptr, path_, ": cannot save dtype ", t.scalar_type());
    c10::Storage storage = t.storage();
    const size_t itemsize = t.element_size();
    TORCH_CHECK(storage.nbytes() % itemsize == 0, path_, ": storage of ", storage.nbytes(),
                " bytes is not a whole number of ", t.scalar_type(), " elements");
    const c10::StorageImpl* impl = storage.unsafeGetStorageImpl();
    auto it = index_.find(impl);
    size_t idx;
    if (it == index_.end()) {
      idx = storages_.size();
      storages_.push_back(StorageRec{storage, t.scalar_type(), std::to_string(idx)});
      index_[impl] = idx;
    } else {
      idx = it->second;
      TORCH_CHECK(storages_[idx].dtype == t.scalar_type(), path_,
                  ": cannot save tensors that view one storage as different dtypes (",
                  storages_[idx].dtype, " and ", t.scalar_type(), ")");
    }
    const auto& rec = storages_[idx];
    global("torch._utils", "_rebuild_tensor_v2");
    out_.push_back('(');
    // Persistent id ('storage', torch.XStorage, key, 'cpu', numel).
    out_.push_back('(');
    str("storage");
    global("torch", cls);
    str(rec.key);
    str("cpu");
    integer(static_cast<int64_t>(storage.nbytes() / itemsize));
    out_.push_back('t');
    out_.push_back('Q');
    integer(t.storage_offset());
    int_tuple(t.sizes());
    int_tuple(t.strides());
    out_.push_back('\x89');                // requires_grad=False
    global("collections", "OrderedDict");  // backward_hooks=OrderedDict()
    out_.push_back(')');
    out_.push_back('R');
    out_.push_back('t');
    out_.push_back('R');
  }

  std::string path_;
  std::string out_;
  std::map<std::string, uint32_t> globals_;
  uint32_t next_memo_ = 0;
  std::vector<StorageRec> storages_;
  std::unordered_map<const c10::StorageImpl*, size_t> index_;
};

}  // namespace

namespace detail {

const char* storage_class_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return "FloatStorage";
    case torch::kFloat64:
      return "DoubleStorage";
    case torch::kFloat16:
      return "HalfStorage";
    case torch::kBFloat16:
      return "BFloat16Storage";
    case torch::kInt64:
      return "LongStorage";
    case torch::kInt32:
      return "IntStorage";
    case torch::kInt16:
      return "ShortStorage";
    case torch::kInt8:
      return "CharStorage";
    case torch::kUInt8:
      return "ByteStorage";
    case torch::kBool:
      return "BoolStorage";
    case torch::kComplexFloat:
      return "ComplexFloatStorage";
    case torch::kComplexDouble:
      return "ComplexDoubleStorage";
    default:
      return nullptr;
  }
}

}  // namespace detail

void save_torch_checkpoint(const std::string& path, const c10::IValue& obj) {
  PickleWriter pw(path);
  pw.value(obj, 0);
  pw.finish();
  AtomicFile file(path);
  // Errors inside the writer callback are kept and rethrown after the writer is done, so
  // no exception crosses miniz's C frames.
  std::string write_error;
  auto sink = [&](const void* buf, size_t n) -> size_t {
    if (write_error.empty()) {
      try {
        file.write(buf, n);
      } catch (const std::exception& e) {
        write_error = e.what();
      }
    }
    return n;
  };
  {
    caffe2::serialize::PyTorchStreamWriter writer(sink);
    writer.writeRecord("data.pkl", pw.bytes().data(), pw.bytes().size());
    writer.writeRecord("byteorder", "little", 6);
    static const char kEmpty = 0;
    for (const auto& rec : pw.storages()) {
      const void* p = rec.storage.nbytes() ? rec.storage.data() : &kEmpty;
      writer.writeRecord("data/" + rec.key, p, rec.storage.nbytes());
    }
    writer.writeEndOfFile();
  }
  TORCH_CHECK(write_error.empty(), path, ": writing checkpoint failed: ", write_error);
  file.commit();
}

}  // namespace causvid::core
