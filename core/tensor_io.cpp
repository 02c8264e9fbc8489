// core/tensor_io.cpp: see tensor_io.h. Sections: memory map, zip central directory, format
// sniffing, the unpickler (torch/serialization.py _load + pickle.py's opcodes), flattening,
// the pickler (torch/serialization.py _save), helpers.
#include "core/tensor_io.h"

#include <c10/util/strides.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/fs.h"

namespace causvid::core {
namespace {

// ------------------------------------------------------------------ memory map

// The whole file mapped MAP_PRIVATE with write permission: writes to loaded tensors go to
// private copies of the touched pages and never reach the file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY);
    TORCH_CHECK(fd >= 0, path, ": cannot open: ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      TORCH_CHECK(false, path, ": cannot stat: ", std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      TORCH_CHECK(false, path, ": not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      int err = errno;
      ::close(fd);
      TORCH_CHECK(p != MAP_FAILED, path, ": mmap of ", size_,
                  " bytes failed: ", std::strerror(err));
      data_ = static_cast<uint8_t*>(p);
    } else {
      ::close(fd);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(data_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  std::string path_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Lets PyTorchStreamReader read from the map instead of opening the file a second time.
class MappedReadAdapter : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit MappedReadAdapter(std::shared_ptr<MappedFile> f) : f_(std::move(f)) {}
  size_t size() const override { return f_->size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* what) const override {
    if (pos >= f_->size()) return 0;
    n = std::min<uint64_t>(n, f_->size() - pos);
    std::memcpy(buf, f_->data() + pos, n);
    return n;
  }

 private:
  std::shared_ptr<MappedFile> f_;
};

// A storage viewing bytes [offset, offset + nbytes) of the map; it keeps the map alive.
c10::Storage mapped_storage(const std::shared_ptr<MappedFile>& f, uint64_t offset,
                            uint64_t nbytes) {
  auto* ctx = new std::shared_ptr<MappedFile>(f);
  c10::DataPtr ptr(
      f->data() + offset, ctx, [](void* c) { delete static_cast<std::shared_ptr<MappedFile>*>(c); },
      c10::Device(c10::kCPU));
  return c10::Storage(c10::Storage::use_byte_size_t(), nbytes, std::move(ptr), nullptr, false);
}

// ------------------------------------------------------------------ zip central directory

uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t rd32(const uint8_t* p) { return uint32_t(rd16(p)) | (uint32_t(rd16(p + 2)) << 16); }
uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | (uint64_t(rd32(p + 4)) << 32); }

struct ZipEntry {
  uint16_t flags = 0, method = 0;
  uint64_t comp_size = 0, size = 0, local_offset = 0;
};

// Name -> entry from the central directory (zip64 aware). PyTorchStreamReader validates the
// archive but does not expose sizes or compression, which the zero-copy path needs.
std::map<std::string, ZipEntry> read_zip_index(const MappedFile& f) {
  const uint8_t* d = f.data();
  const uint64_t n = f.size();
  const std::string& path = f.path();
  TORCH_CHECK(n >= 22, path, ": zip archive of ", n, " bytes is truncated");
  int64_t eocd = -1;
  const uint64_t lowest = n > 22 + 65535 ? n - 22 - 65535 : 0;
  for (uint64_t p = n - 22 + 1; p-- > lowest;) {
    if (rd32(d + p) == 0x06054b50) {
      eocd = static_cast<int64_t>(p);
      break;
    }
  }
  TORCH_CHECK(eocd >= 0, path,
              ": zip end-of-central-directory record not found (truncated "
              "or corrupt torch.save archive)");
  uint64_t entries = rd16(d + eocd + 10), cd_size = rd32(d + eocd + 12),
           cd_off = rd32(d + eocd + 16);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
    TORCH_CHECK(eocd >= 20 && rd32(d + eocd - 20) == 0x07064b50, path,
                ": zip64 locator missing (corrupt archive)");
    const uint64_t z = rd64(d + eocd - 20 + 8);
    TORCH_CHECK(z + 56 <= n && rd32(d + z) == 0x06064b50, path,
                ": zip64 end-of-central-directory record missing (corrupt archive)");
    entries = rd64(d + z + 32);
    cd_size = rd64(d + z + 40);
    cd_off = rd64(d + z + 48);
  }
  TORCH_CHECK(cd_off <= n && cd_size <= n - cd_off, path, ": zip central directory at ", cd_off,
              " (+", cd_size, " bytes) lies outside the file of ", n, " bytes (truncated?)");
  std::map<std::string, ZipEntry> out;
  uint64_t p = cd_off;
  const uint64_t end = cd_off + cd_size;
  for (uint64_t i = 0; i < entries; ++i) {
    TORCH_CHECK(p + 46 <= end && rd32(d + p) == 0x02014b50, path,
                ": corrupt zip central directory entry ", i);
    ZipEntry e;
    e.flags = rd16(d + p + 8);
    e.method = rd16(d + p + 10);
    e.comp_size = rd32(d + p + 20);
    e.size = rd32(d + p + 24);
    const uint64_t name_len = rd16(d + p + 28), extra_len = rd16(d + p + 30),
                   comment_len = rd16(d + p + 32);
    e.local_offset = rd32(d + p + 42);
    TORCH_CHECK(p + 46 + name_len + extra_len + comment_len <= end, path,
                ": corrupt zip central directory entry ", i);
    std::string name(reinterpret_cast<const char*>(d + p + 46), name_len);
    // zip64 extended information: the fields that were 0xFFFFFFFF, in this order.
    const uint8_t* x = d + p + 46 + name_len;
    const uint8_t* xe = x + extra_len;
    while (x + 4 <= xe) {
      const uint16_t id = rd16(x), len = rd16(x + 2);
      if (x + 4 + len > xe) break;
      if (id == 0x0001) {
        const uint8_t* q = x + 4;
        const uint8_t* qe = q + len;
        if (e.size == 0xFFFFFFFFu && q + 8 <= qe) e.size = rd64(q), q += 8;
        if (e.comp_size == 0xFFFFFFFFu && q + 8 <= qe) e.comp_size = rd64(q), q += 8;
        if (e.local_offset == 0xFFFFFFFFu && q + 8 <= qe) e.local_offset = rd64(q), q += 8;
      }
      x += 4 + len;
    }
    out[name] = e;
    p += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

// Byte offset of an entry's data, checked against the file size.
uint64_t zip_data_offset(const MappedFile& f, const std::string& name, const ZipEntry& e) {
  const uint8_t* d = f.data();
  const uint64_t n = f.size();
  TORCH_CHECK(
      e.local_offset <= n && n - e.local_offset >= 30 && rd32(d + e.local_offset) == 0x04034b50,
      f.path(), ": zip record ", name, " has a corrupt local header (truncated?)");
  const uint64_t off =
      e.local_offset + 30 + rd16(d + e.local_offset + 26) + rd16(d + e.local_offset + 28);
  TORCH_CHECK(off <= n && e.comp_size <= n - off, f.path(), ": zip record ", name, " (",
              e.comp_size, " bytes at ", off, ") extends past the end of the file (", n,
              " bytes; truncated?)");
  return off;
}

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

// ------------------------------------------------------------------ unpickler

c10::impl::GenericDict new_dict() {
  return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get());
}
c10::impl::GenericList new_list() { return c10::impl::GenericList(c10::AnyType::get()); }

torch::ScalarType storage_class_dtype(const std::string& cls, bool* ok) {
  static const std::map<std::string, torch::ScalarType> kMap = {
      {"FloatStorage", torch::kFloat32},
      {"DoubleStorage", torch::kFloat64},
      {"HalfStorage", torch::kFloat16},
      {"BFloat16Storage", torch::kBFloat16},
      {"LongStorage", torch::kInt64},
      {"IntStorage", torch::kInt32},
      {"ShortStorage", torch::kInt16},
      {"CharStorage", torch::kInt8},
      {"ByteStorage", torch::kUInt8},
      {"BoolStorage", torch::kBool},
      {"ComplexFloatStorage", torch::kComplexFloat},
      {"ComplexDoubleStorage", torch::kComplexDouble},
      {"UntypedStorage", torch::kUInt8}};
  const std::string base = cls.substr(cls.rfind('.') + 1);
  auto it = kMap.find(base);
  *ok = it != kMap.end() && (cls.rfind("torch.", 0) == 0);
  return *ok ? it->second : torch::kFloat32;
}

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

// Reads one torch.save zip archive: PyTorchStreamReader for validation and records, our
// own pickle interpreter for data.pkl.
class CheckpointReader {
 public:
  CheckpointReader(const std::string& path, const TorchLoadOptions& opt) : path_(path), opt_(opt) {
    file_ = std::make_shared<MappedFile>(path);
    try {
      reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
          std::make_shared<MappedReadAdapter>(file_));
    } catch (const c10::Error& e) {
      TORCH_CHECK(false, path, ": not a readable torch.save zip archive (truncated or corrupt?): ",
                  e.what_without_backtrace());
    }
    index_ = read_zip_index(*file_);
    // The record prefix is the archive's top folder ("archive", or the saved file's stem).
    for (const auto& kv : index_) {
      const auto slash = kv.first.find('/');
      if (slash != std::string::npos &&
          kv.first.compare(slash + 1, std::string::npos, "data.pkl") == 0) {
        prefix_ = kv.first.substr(0, slash + 1);
        break;
      }
    }
    TORCH_CHECK(reader_->hasRecord("data.pkl"), path, ": zip archive has no data.pkl record ",
                "(a TorchScript module or not a torch.save file; want a torch.save checkpoint)");
    if (reader_->hasRecord("byteorder")) {
      auto rec = reader_->getRecord("byteorder");
      std::string order(static_cast<const char*>(std::get<0>(rec).get()), std::get<1>(rec));
      TORCH_CHECK(order == "little", path, ": byteorder '", order, "' not supported (want little)");
    }
  }

  c10::IValue load() {
    auto rec = reader_->getRecord("data.pkl");
    pkl_ = std::move(std::get<0>(rec));
    data_ = static_cast<const uint8_t*>(pkl_.get());
    size_ = std::get<1>(rec);
    c10::IValue out;
    try {
      out = run();
      check_nesting(out);
    } catch (...) {
      // Whatever the pickle built (on the stack, in the memo, the result) may nest deeper than
      // IValue's recursive destructor can take: take it apart without recursion first.
      std::vector<c10::IValue> all;
      for (auto& it : stack_) all.push_back(std::move(it.v));
      for (auto& kv : memo_) all.push_back(std::move(kv.second.v));
      if (!out.isNone()) all.push_back(std::move(out));
      stack_.clear();
      memo_.clear();
      release_nested(std::move(all));
      throw;
    }
    return out;
  }

 private:
  enum class Kind { kValue, kGlobal, kObject };
  struct Item {
    c10::IValue v;
    Kind kind = Kind::kValue;
  };
  struct StorageMeta {
    c10::Storage storage;
    torch::ScalarType dtype;
    int64_t numel;
    std::string key;
  };

// Errors name the file, the pickle offset of the opcode and, when known, the last dict key.
#define PKL_CHECK(cond, ...)                                                           \
  TORCH_CHECK(cond, path_, ": data.pkl byte ", op_pos_, ": ", __VA_ARGS__, key_hint(), \
              " (corrupt or unsupported torch.save pickle)")

  std::string key_hint() const {
    return last_key_.empty() ? std::string() : " (near key '" + last_key_ + "')";
  }

  // ---- raw reads
  const uint8_t* take(uint64_t n) {
    PKL_CHECK(n <= size_ - pos_, "pickle truncated: want ", n, " more bytes, ", size_ - pos_,
              " left");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint8_t u8() { return *take(1); }
  std::string line() {
    const uint8_t* start = data_ + pos_;
    const void* nl = std::memchr(start, '\n', size_ - pos_);
    PKL_CHECK(nl != nullptr, "pickle truncated: unterminated text argument");
    const size_t len = static_cast<const uint8_t*>(nl) - start;
    pos_ += len + 1;
    return std::string(reinterpret_cast<const char*>(start), len);
  }
  std::string str(uint64_t n) {
    const uint8_t* p = take(n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }

  // ---- nesting
  // The longest chain of containers in `root` (lists, dicts, tuples), found without recursion;
  // deeper than kMaxNesting or cyclic is an error (flatten_tensors and IValue's destructor
  // recurse once per level: a 150,000-deep list would overflow the stack).
  static constexpr int64_t kMaxNesting = 400;
  static bool is_container(const c10::IValue& v) {
    return v.isList() || v.isGenericDict() || v.isTuple();
  }
  static std::vector<c10::IValue> children(const c10::IValue& v) {
    std::vector<c10::IValue> c;
    if (v.isList()) {
      for (const auto& e : v.toListRef()) c.push_back(e);
    } else if (v.isGenericDict()) {
      for (const auto& kv : v.toGenericDict()) {
        c.push_back(kv.key());
        c.push_back(kv.value());
      }
    } else if (v.isTuple()) {
      for (const auto& e : v.toTupleRef().elements()) c.push_back(e);
    }
    return c;
  }
  void check_nesting(const c10::IValue& root) {
    if (!is_container(root)) return;
    // Iterative post-order DFS; depth[n] = 1 + max depth of its container children.
    std::unordered_map<const void*, int64_t> depth;  // done nodes
    std::unordered_set<const void*> open;            // on the current path (cycle check)
    struct Frame {
      c10::IValue v;
      std::vector<c10::IValue> kids;
      size_t next = 0;
      int64_t best = 0;
    };
    std::vector<Frame> path;
    auto enter = [&](const c10::IValue& v) {
      open.insert(v.internalToPointer());
      path.push_back(Frame{v, children(v)});
      PKL_CHECK(int64_t(path.size()) <= kMaxNesting, "containers nested deeper than ",
                kMaxNesting, " levels");
    };
    enter(root);
    while (!path.empty()) {
      Frame& f = path.back();
      if (f.next < f.kids.size()) {
        const c10::IValue k = f.kids[f.next++];
        if (!is_container(k)) continue;
        const void* p = k.internalToPointer();
        PKL_CHECK(!open.count(p), "a container contains itself (cyclic pickle)");
        auto it = depth.find(p);
        if (it != depth.end()) {
          f.best = std::max(f.best, it->second);
        } else {
          enter(k);
        }
        continue;
      }
      const int64_t d = f.best + 1;
      const void* p = f.v.internalToPointer();
      depth[p] = d;
      open.erase(p);
      path.pop_back();
      if (!path.empty()) path.back().best = std::max(path.back().best, d);
    }
  }
  // Drops nested values level by level (children are moved out before a container dies), so
  // no destructor recursion happens however deep the value is.
  static void release_nested(std::vector<c10::IValue> todo) {
    while (!todo.empty()) {
      c10::IValue v = std::move(todo.back());
      todo.pop_back();
      if (v.isList()) {
        auto l = v.toList();
        for (size_t i = 0; i < l.size(); ++i) todo.push_back(l.get(i));
        l.clear();
      } else if (v.isGenericDict()) {
        auto d = v.toGenericDict();
        for (const auto& kv : d) {
          todo.push_back(kv.key());
          todo.push_back(kv.value());
        }
        d.clear();
      } else if (v.isTuple()) {
        auto t = v.toTuple();
        for (size_t i = 0; i < t->elements().size(); ++i) {
          todo.push_back(t->elements()[i]);
          t->unsafeSetElement(i, c10::IValue());
        }
      }
    }
  }

  // ---- stack
  void push(c10::IValue v, Kind k = Kind::kValue) { stack_.push_back(Item{std::move(v), k}); }
  Item pop() {
    PKL_CHECK(stack_.size() > (marks_.empty() ? 0 : marks_.back()), "stack underflow");
    Item it = std::move(stack_.back());
    stack_.pop_back();
    return it;
  }
  Item& top() {
    PKL_CHECK(!stack_.empty(), "stack underflow");
    return stack_.back();
  }
  std::vector<Item> pop_mark() {
    PKL_CHECK(!marks_.empty(), "no MARK on the stack");
    const size_t m = marks_.back();
    marks_.pop_back();
    PKL_CHECK(m <= stack_.size(), "MARK above the stack");
    std::vector<Item> items(std::make_move_iterator(stack_.begin() + m),
                            std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  void push_string(std::string s) {
    // Remember strings pushed where a dict key goes, for error messages.
    const bool after_dict = !stack_.empty() && is_dict(stack_.back());
    const bool in_setitems =
        !marks_.empty() && marks_.back() > 0 && marks_.back() <= stack_.size() &&
        (stack_.size() - marks_.back()) % 2 == 0 && is_dict(stack_[marks_.back() - 1]);
    if (after_dict || in_setitems) last_key_ = s;
    push(c10::IValue(std::move(s)));
  }
  static bool is_dict(const Item& it) { return it.v.isGenericDict(); }

  // ---- memo
  void memo_put(uint64_t idx) {
    PKL_CHECK(!stack_.empty(), "memo put on an empty stack");
    PKL_CHECK(idx < (uint64_t(1) << 32), "memo index ", idx, " too large");
    memo_[idx] = stack_.back();
  }
  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    PKL_CHECK(it != memo_.end(), "memo index ", idx, " was never stored");
    stack_.push_back(it->second);
  }

  // ---- values
  int64_t to_int(const c10::IValue& v, const char* what) {
    PKL_CHECK(v.isInt(), what, " is ", v.tagKind(), ", want int");
    return v.toInt();
  }
  std::vector<int64_t> to_ints(const c10::IValue& v, const char* what) {
    std::vector<int64_t> out;
    if (v.isTuple()) {
      for (const auto& e : v.toTupleRef().elements()) out.push_back(to_int(e, what));
    } else {
      PKL_CHECK(v.isList(), what, " is ", v.tagKind(), ", want a tuple of ints");
      for (const auto& e : v.toListRef()) out.push_back(to_int(e, what));
    }
    return out;
  }
  // Integers of LONG1/LONG4: little-endian two's complement.
  c10::IValue read_long(uint64_t n) {
    const uint8_t* p = take(n);
    if (n == 0) return c10::IValue(int64_t(0));
    if (n > 8) {
      // Beyond int64 (only the legacy format's magic number is that long).
      return c10::IValue(std::string("<int of ") + std::to_string(n) + " bytes>");
    }
    uint64_t v = 0;
    for (uint64_t i = 0; i < n; ++i) v |= uint64_t(p[i]) << (8 * i);
    if (n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t(0) << (8 * n);  // sign-extend
    return c10::IValue(static_cast<int64_t>(v));
  }
  // Dict keys must be hashable IValues; anything else is keyed by its summary.
  c10::IValue dict_key(const c10::IValue& k) {
    if (k.isString() || k.isInt() || k.isBool() || k.isDouble()) return k;
    return c10::IValue(ivalue_summary(k, 200));
  }
  void setitem(Item& target, const c10::IValue& k, const c10::IValue& v) {
    PKL_CHECK(target.v.isGenericDict(), "SETITEM on ", target.v.tagKind(), ", want a dict");
    target.v.toGenericDict().insert_or_assign(dict_key(k), v);
  }
  void append(Item& target, const c10::IValue& v) {
    if (target.kind == Kind::kObject) {
      auto d = target.v.toGenericDict();
      if (!d.contains("__items__")) d.insert("__items__", new_list());
      d.at("__items__").toList().push_back(v);
      return;
    }
    PKL_CHECK(target.v.isList(), "APPEND on ", target.v.tagKind(), ", want a list");
    target.v.toList().push_back(v);
  }
  c10::IValue make_tuple(std::vector<Item> items) {
    std::vector<c10::IValue> v;
    v.reserve(items.size());
    for (auto& i : items) v.push_back(std::move(i.v));
    return c10::ivalue::Tuple::create(std::move(v));
  }

  // An instance of a class we do not execute: a dict naming the class, plus its state.
  Item new_object(const std::string& cls, const c10::IValue& args) {
    auto d = new_dict();
    d.insert("__class__", cls);
    if (args.isTuple() && !args.toTupleRef().elements().empty()) d.insert("__args__", args);
    return Item{c10::IValue(d), Kind::kObject};
  }

  // REDUCE / NEWOBJ: the callables torch.save emits, everything else becomes an object.
  Item call(const std::string& fn, const c10::IValue& args_v) {
    PKL_CHECK(args_v.isTuple(), "arguments of ", fn, " are ", args_v.tagKind(), ", want a tuple");
    const auto args = args_v.toTupleRef().elements().vec();
    if (fn == "collections.OrderedDict" || fn == "builtins.dict" || fn == "__builtin__.dict") {
      Item d{c10::IValue(new_dict())};
      if (!args.empty() && args[0].isList()) {
        for (const auto& pr : args[0].toListRef()) {
          PKL_CHECK(pr.isTuple() && pr.toTupleRef().elements().size() == 2, fn,
                    " argument is not a list of pairs");
          setitem(d, pr.toTupleRef().elements()[0], pr.toTupleRef().elements()[1]);
        }
      }
      return d;
    }
    if (fn == "builtins.set" || fn == "__builtin__.set" || fn == "builtins.frozenset" ||
        fn == "__builtin__.frozenset" || fn == "builtins.list" || fn == "__builtin__.list") {
      auto l = new_list();
      if (!args.empty() && args[0].isList())
        for (const auto& e : args[0].toListRef()) l.push_back(e);
      if (!args.empty() && args[0].isTuple())
        for (const auto& e : args[0].toTupleRef().elements()) l.push_back(e);
      return Item{c10::IValue(l)};
    }
    if (fn == "torch.Size" || fn == "builtins.tuple" || fn == "__builtin__.tuple") {
      if (args.empty()) return Item{c10::ivalue::Tuple::create(std::vector<c10::IValue>{})};
      if (args[0].isTuple()) return Item{args[0]};
      PKL_CHECK(args[0].isList(), fn, " argument is ", args[0].tagKind(), ", want a tuple");
      return Item{c10::ivalue::Tuple::create(args[0].toListRef().vec())};
    }
    if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") {
      PKL_CHECK(args.size() >= 4, fn, " has ", args.size(), " arguments, want at least 4");
      return Item{rebuild_tensor(args[0], args[1], args[2], args[3])};
    }
    if (fn == "torch._utils._rebuild_parameter" ||
        fn == "torch._utils._rebuild_parameter_with_state") {
      PKL_CHECK(!args.empty() && args[0].isTensor(), fn, " wants a tensor as first argument");
      return Item{args[0]};
    }
    if (fn == "torch._tensor._rebuild_from_type_v2" || fn == "torch._tensor._rebuild_from_type") {
      // (func, type, args, state): a tensor subclass; rebuild the plain tensor.
      PKL_CHECK(args.size() >= 3 && args[0].isString(), fn, " has unexpected arguments");
      PKL_CHECK(++call_depth_ < 8, fn, " nested too deeply");
      Item out = call(args[0].toStringRef(), args[2]);
      --call_depth_;
      return out;
    }
    if (fn == "torch.jit._pickle.restore_type_tag" || fn == "torch.jit._pickle.build_intlist" ||
        fn == "torch.jit._pickle.build_doublelist" || fn == "torch.jit._pickle.build_boollist" ||
        fn == "torch.jit._pickle.build_tensorlist") {
      // torch::pickle_save (TorchScript's pickler) wraps typed containers in these.
      PKL_CHECK(!args.empty(), fn, " wants an argument");
      return Item{args[0]};
    }
    if (fn == "_codecs.encode") {
      // Protocol 2 stores Python 3 bytes as _codecs.encode(str, 'latin1').
      PKL_CHECK(!args.empty() && args[0].isString(), fn, " wants a str argument");
      return Item{c10::IValue(latin1(args[0].toStringRef()))};
    }
    PKL_CHECK(fn.rfind("torch._utils._rebuild", 0) != 0, "tensor kind ", fn,
              " is not supported (want dense CPU-loadable tensors: _rebuild_tensor_v2)");
    return new_object(fn, args_v);
  }

  // UTF-8 text whose code points are < 256 -> those bytes.
  std::string latin1(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      const uint8_t c = s[i];
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
      } else if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) {
        out.push_back(static_cast<char>(((c & 0x1F) << 6) | (uint8_t(s[i + 1]) & 0x3F)));
        ++i;
      } else {
        out.push_back('?');
      }
    }
    return out;
  }

  void build(Item& target, const Item& state) {
    if (target.kind != Kind::kObject) return;  // e.g. OrderedDict._metadata, Parameter state
    auto d = target.v.toGenericDict();
    auto merge = [&](const c10::IValue& s) {
      if (!s.isGenericDict()) return false;
      for (const auto& kv : s.toGenericDict()) d.insert_or_assign(kv.key(), kv.value());
      return true;
    };
    if (merge(state.v)) return;
    if (state.v.isTuple() && state.v.toTupleRef().elements().size() == 2) {
      const auto& e = state.v.toTupleRef().elements();
      const bool a = e[0].isNone() || merge(e[0]);
      const bool b = e[1].isNone() || merge(e[1]);
      if (a && b) return;
    }
    d.insert_or_assign("__state__", state.v);
  }

  // ('storage', torch.FloatStorage, key, location, numel) -> the storage of record data/key.
  c10::IValue persistent_load(const c10::IValue& pid) {
    PKL_CHECK(pid.isTuple(), "persistent id is ", pid.tagKind(), ", want a tuple");
    const auto e = pid.toTupleRef().elements().vec();
    PKL_CHECK(e.size() == 5 && e[0].isString() && e[0].toStringRef() == "storage", "persistent id ",
              ivalue_summary(pid), " is not ('storage', type, key, location, numel)");
    PKL_CHECK(e[1].isString() && e[2].isString(), "persistent id ", ivalue_summary(pid),
              " has a bad storage type or key");
    bool ok = false;
    const std::string& cls = e[1].toStringRef();
    const torch::ScalarType dtype = storage_class_dtype(cls, &ok);
    PKL_CHECK(ok, "storage type ", cls, " is not supported (want torch.FloatStorage, ",
              "HalfStorage, BFloat16Storage, DoubleStorage, LongStorage, IntStorage, ",
              "ShortStorage, CharStorage, ByteStorage, BoolStorage, Complex*Storage)");
    const std::string& key = e[2].toStringRef();
    const int64_t numel = to_int(e[4], "storage numel");
    PKL_CHECK(numel >= 0, "storage ", key, " has negative numel ", numel);
    auto it = storages_.find(key);
    if (it != storages_.end()) {
      PKL_CHECK(it->second.dtype == dtype && it->second.numel == numel, "storage ", key,
                " is referenced as ", cls, " of ", numel, " elements and as ",
                storage_class_name(it->second.dtype), " of ", it->second.numel);
      return c10::IValue(it->second.storage);
    }
    const uint64_t itemsize = c10::elementSize(dtype);
    PKL_CHECK(uint64_t(numel) <= (uint64_t(1) << 62) / itemsize, "storage ", key, " numel ", numel,
              " overflows");
    const uint64_t nbytes = uint64_t(numel) * itemsize;
    StorageMeta meta{read_storage(key, nbytes), dtype, numel, key};
    c10::IValue out(meta.storage);
    by_impl_[meta.storage.unsafeGetStorageImpl()] = key;
    storages_.emplace(key, std::move(meta));
    return out;
  }

  c10::Storage read_storage(const std::string& key, uint64_t nbytes) {
    const std::string rel = "data/" + key;
    auto it = index_.find(prefix_ + rel);
    PKL_CHECK(it != index_.end() && reader_->hasRecord(rel), "record ", prefix_, rel,
              " (a tensor's storage) is missing from the archive");
    const ZipEntry& ze = it->second;
    PKL_CHECK(ze.size >= nbytes, "record ", prefix_, rel, " has ", ze.size,
              " bytes, but its storage wants ", nbytes, " (truncated or corrupt archive)");
    const bool stored = ze.method == 0 && (ze.flags & 1) == 0 && ze.comp_size == ze.size;
    if (stored) {
      const uint64_t off = zip_data_offset(*file_, prefix_ + rel, ze);
      if (opt_.mmap && (off % 16) == 0) return mapped_storage(file_, off, nbytes);
      c10::Storage s(c10::Storage::use_byte_size_t(), nbytes, c10::GetAllocator(c10::kCPU), false);
      if (nbytes) std::memcpy(s.mutable_data(), file_->data() + off, nbytes);
      return s;
    }
    // Compressed record (not written by torch.save, but valid zip): inflate via the reader.
    at::DataPtr ptr;
    size_t got = 0;
    try {
      std::tie(ptr, got) = reader_->getRecord(rel);
    } catch (const c10::Error& e) {
      PKL_CHECK(false, "cannot read record ", prefix_, rel, ": ", e.what_without_backtrace());
    }
    PKL_CHECK(got >= nbytes, "record ", prefix_, rel, " has ", got, " bytes, want ", nbytes);
    return c10::Storage(c10::Storage::use_byte_size_t(), nbytes, std::move(ptr), nullptr, false);
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, ...) with every index checked.
  c10::IValue rebuild_tensor(const c10::IValue& storage_v, const c10::IValue& offset_v,
                             const c10::IValue& size_v, const c10::IValue& stride_v) {
    PKL_CHECK(storage_v.isStorage(), "tensor storage is ", storage_v.tagKind(),
              ", want a storage persistent id");
    c10::Storage storage = storage_v.toStorage();
    auto key_it = by_impl_.find(storage.unsafeGetStorageImpl());
    PKL_CHECK(key_it != by_impl_.end(), "tensor storage of unknown origin");
    const StorageMeta& meta = storages_.at(key_it->second);
    const int64_t offset = to_int(offset_v, "storage offset");
    const auto sizes = to_ints(size_v, "tensor size");
    const auto strides = to_ints(stride_v, "tensor stride");
    PKL_CHECK(sizes.size() == strides.size(), "tensor size ", c10::IntArrayRef(sizes),
              " and stride ", c10::IntArrayRef(strides), " differ in length");
    PKL_CHECK(sizes.size() <= 64, "tensor has ", sizes.size(), " dims");
    PKL_CHECK(offset >= 0, "negative storage offset ", offset);
    // Largest element index the view touches, without overflow.
    using u128 = unsigned __int128;
    u128 last = static_cast<u128>(offset);
    bool empty = false;
    for (size_t i = 0; i < sizes.size(); ++i) {
      PKL_CHECK(sizes[i] >= 0 && strides[i] >= 0, "tensor size ", c10::IntArrayRef(sizes),
                " / stride ", c10::IntArrayRef(strides), " has negative entries");
      if (sizes[i] == 0)
        empty = true;
      else
        last += static_cast<u128>(sizes[i] - 1) * static_cast<u128>(strides[i]);
    }
    if (empty) {
      PKL_CHECK(offset <= meta.numel, "storage offset ", offset, " beyond storage data/", meta.key,
                " of ", meta.numel, " elements");
    } else {
      PKL_CHECK(last < static_cast<u128>(meta.numel), "tensor view (offset ", offset, ", size ",
                c10::IntArrayRef(sizes), ", stride ", c10::IntArrayRef(strides), ") needs element ",
                static_cast<uint64_t>(last), " but storage data/", meta.key, " has only ",
                meta.numel, " elements");
    }
    auto t = torch::empty({0}, torch::TensorOptions().dtype(meta.dtype));
    t.set_(storage, offset, sizes, strides);
    return c10::IValue(t);
  }

  c10::IValue run() {
    while (true) {
      op_pos_ = pos_;
      const uint8_t op = u8();
      switch (op) {
        case 0x80: {  // PROTO
          const uint8_t v = u8();
          PKL_CHECK(v <= 5, "pickle protocol ", int(v), " (want <= 5)");
          break;
        }
        case 0x95:  // FRAME (protocol 4): length only
          take(8);
          break;
        case '}':  // EMPTY_DICT
          push(c10::IValue(new_dict()));
          break;
        case ']':  // EMPTY_LIST
          push(c10::IValue(new_list()));
          break;
        case ')':  // EMPTY_TUPLE
          push(c10::ivalue::Tuple::create(std::vector<c10::IValue>{}));
          break;
        case 0x8f:  // EMPTY_SET
          push(c10::IValue(new_list()));
          break;
        case '(':  // MARK
          marks_.push_back(stack_.size());
          break;
        case 'N':  // NONE
          push(c10::IValue());
          break;
        case 0x88:  // NEWTRUE
          push(c10::IValue(true));
          break;
        case 0x89:  // NEWFALSE
          push(c10::IValue(false));
          break;
        case 'K':  // BININT1
          push(c10::IValue(int64_t(u8())));
          break;
        case 'M':  // BININT2
          push(c10::IValue(int64_t(rd16(take(2)))));
          break;
        case 'J':  // BININT
          push(c10::IValue(int64_t(int32_t(rd32(take(4))))));
          break;
        case 0x8a: {  // LONG1
          const uint8_t n = u8();
          push(read_long(n));
          break;
        }
        case 0x8b: {  // LONG4
          const int32_t n = int32_t(rd32(take(4)));
          PKL_CHECK(n >= 0, "negative LONG4 length");
          push(read_long(uint64_t(n)));
          break;
        }
        case 'I': {  // INT (protocol 0); "01"/"00" are True/False
          const std::string s = line();
          if (s == "01" || s == "00") {
            push(c10::IValue(s == "01"));
          } else {
            push(c10::IValue(int64_t(parse_int(s))));
          }
          break;
        }
        case 'L': {  // LONG (protocol 0)
          std::string s = line();
          if (!s.empty() && s.back() == 'L') s.pop_back();
          push(c10::IValue(int64_t(parse_int(s))));
          break;
        }
        case 'F': {  // FLOAT (protocol 0)
          const std::string s = line();
          char* end = nullptr;
          const double d = std::strtod(s.c_str(), &end);
          PKL_CHECK(end && *end == '\0' && !s.empty(), "bad FLOAT '", s, "'");
          push(c10::IValue(d));
          break;
        }
        case 'G': {  // BINFLOAT: big-endian double
          const uint8_t* p = take(8);
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
          double d;
          std::memcpy(&d, &bits, 8);
          push(c10::IValue(d));
          break;
        }
        case 'X':  // BINUNICODE
          push_string(str(rd32(take(4))));
          break;
        case 0x8c:  // SHORT_BINUNICODE
          push_string(str(u8()));
          break;
        case 0x8d:  // BINUNICODE8
          push_string(str(rd64(take(8))));
          break;
        case 'T': {  // BINSTRING
          const int32_t n = int32_t(rd32(take(4)));
          PKL_CHECK(n >= 0, "negative BINSTRING length");
          push_string(str(uint64_t(n)));
          break;
        }
        case 'U':  // SHORT_BINSTRING
          push_string(str(u8()));
          break;
        case 'B':  // BINBYTES
          push(c10::IValue(str(rd32(take(4)))));
          break;
        case 'C':  // SHORT_BINBYTES
          push(c10::IValue(str(u8())));
          break;
        case 0x8e:  // BINBYTES8
          push(c10::IValue(str(rd64(take(8)))));
          break;
        case 0x96:  // BYTEARRAY8
          push(c10::IValue(str(rd64(take(8)))));
          break;
        case 'q':  // BINPUT
          memo_put(u8());
          break;
        case 'r':  // LONG_BINPUT
          memo_put(rd32(take(4)));
          break;
        case 'p':  // PUT
          memo_put(uint64_t(parse_int(line())));
          break;
        case 0x94:  // MEMOIZE
          memo_put(memo_.size());
          break;
        case 'h':  // BINGET
          memo_get(u8());
          break;
        case 'j':  // LONG_BINGET
          memo_get(rd32(take(4)));
          break;
        case 'g':  // GET
          memo_get(uint64_t(parse_int(line())));
          break;
        case 'c': {  // GLOBAL module\nname\n
          std::string module = line();
          std::string name = line();
          push(c10::IValue(module + "." + name), Kind::kGlobal);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Item name = pop(), module = pop();
          PKL_CHECK(name.v.isString() && module.v.isString(), "STACK_GLOBAL wants two strings");
          push(c10::IValue(module.v.toStringRef() + "." + name.v.toStringRef()), Kind::kGlobal);
          break;
        }
        case 't':  // TUPLE
          push(make_tuple(pop_mark()));
          break;
        case 0x85: {  // TUPLE1
          Item a = pop();
          push(c10::ivalue::Tuple::create({a.v}));
          break;
        }
        case 0x86: {  // TUPLE2
          Item b = pop(), a = pop();
          push(c10::ivalue::Tuple::create({a.v, b.v}));
          break;
        }
        case 0x87: {  // TUPLE3
          Item c = pop(), b = pop(), a = pop();
          push(c10::ivalue::Tuple::create({a.v, b.v, c.v}));
          break;
        }
        case 'l': {  // LIST
          auto items = pop_mark();
          auto l = new_list();
          for (auto& i : items) l.push_back(std::move(i.v));
          push(c10::IValue(l));
          break;
        }
        case 0x91: {  // FROZENSET
          auto items = pop_mark();
          auto l = new_list();
          for (auto& i : items) l.push_back(std::move(i.v));
          push(c10::IValue(l));
          break;
        }
        case 'd': {  // DICT
          auto items = pop_mark();
          PKL_CHECK(items.size() % 2 == 0, "DICT with an odd number of items");
          Item d{c10::IValue(new_dict())};
          for (size_t i = 0; i < items.size(); i += 2) setitem(d, items[i].v, items[i + 1].v);
          stack_.push_back(std::move(d));
          break;
        }
        case 'R': {  // REDUCE
          Item args = pop(), fn = pop();
          PKL_CHECK(fn.kind == Kind::kGlobal, "REDUCE calls a ", fn.v.tagKind(), ", want a global");
          stack_.push_back(call(fn.v.toStringRef(), args.v));
          break;
        }
        case 0x81: {  // NEWOBJ cls.__new__(cls, *args)
          Item args = pop(), cls = pop();
          PKL_CHECK(cls.kind == Kind::kGlobal, "NEWOBJ on a ", cls.v.tagKind(), ", want a class");
          stack_.push_back(call(cls.v.toStringRef(), args.v));
          break;
        }
        case 0x92: {  // NEWOBJ_EX (cls, args, kwargs)
          Item kwargs = pop(), args = pop(), cls = pop();
          PKL_CHECK(cls.kind == Kind::kGlobal, "NEWOBJ_EX on a ", cls.v.tagKind(),
                    ", want a class");
          stack_.push_back(call(cls.v.toStringRef(), args.v));
          break;
        }
        case 'b': {  // BUILD
          Item state = pop();
          build(top(), state);
          break;
        }
        case 'Q': {  // BINPERSID
          Item pid = pop();
          push(persistent_load(pid.v));
          break;
        }
        case 's': {  // SETITEM
          Item v = pop(), k = pop();
          setitem(top(), k.v, v.v);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          PKL_CHECK(items.size() % 2 == 0, "SETITEMS with an odd number of items");
          Item& target = top();
          for (size_t i = 0; i < items.size(); i += 2) setitem(target, items[i].v, items[i + 1].v);
          break;
        }
        case 'a': {  // APPEND
          Item v = pop();
          append(top(), v.v);
          break;
        }
        case 'e':     // APPENDS
        case 0x90: {  // ADDITEMS (sets are lists here)
          auto items = pop_mark();
          Item& target = top();
          for (auto& i : items) append(target, i.v);
          break;
        }
        case '0':  // POP
          pop();
          break;
        case '1':  // POP_MARK
          pop_mark();
          break;
        case '2':  // DUP
          stack_.push_back(top());
          break;
        case '.': {  // STOP
          Item result = pop();
          return result.v;
        }
        default:
          PKL_CHECK(false, "unsupported pickle opcode 0x", hex(op));
      }
    }
  }

  int64_t parse_int(const std::string& s) {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    PKL_CHECK(!s.empty() && end && *end == '\0' && errno == 0, "bad integer '", s, "'");
    return v;
  }
  static std::string hex(uint8_t b) {
    static const char* kHex = "0123456789abcdef";
    return std::string{kHex[b >> 4], kHex[b & 15]};
  }

#undef PKL_CHECK

  std::string path_;
  TorchLoadOptions opt_;
  std::shared_ptr<MappedFile> file_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
  std::map<std::string, ZipEntry> index_;
  std::string prefix_;
  at::DataPtr pkl_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0, pos_ = 0, op_pos_ = 0;
  std::vector<Item> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Item> memo_;
  std::map<std::string, StorageMeta> storages_;
  std::unordered_map<const c10::StorageImpl*, std::string> by_impl_;
  std::string last_key_;
  int call_depth_ = 0;
};

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
