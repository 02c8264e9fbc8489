// core/torch_pickle.h: internals of core/tensor_io shared by its translation units (not a
// public header). MappedFile (a private copy-on-write map of a weight file), little-endian
// reads, the storage class names of torch.save, and CheckpointReader: the torch.save zip
// reader (torch_zip.cpp: records via caffe2::serialize::PyTorchStreamReader) and pickle
// interpreter (torch_unpickler.cpp: values and calls; torch_unpickler_ops.cpp: opcodes), a port
// of torch/serialization.py _load and pickle.py's Unpickler.
#pragma once

#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor_io.h"

namespace causvid::core::detail {

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

// A storage viewing bytes [offset, offset + nbytes) of the map; it keeps the map alive.
c10::Storage mapped_storage(const std::shared_ptr<MappedFile>& f, uint64_t offset, uint64_t nbytes);

inline uint16_t rd16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t rd32(const uint8_t* p) { return uint32_t(rd16(p)) | (uint32_t(rd16(p + 2)) << 16); }
inline uint64_t rd64(const uint8_t* p) { return uint64_t(rd32(p)) | (uint64_t(rd32(p + 4)) << 32); }

inline c10::impl::GenericDict new_dict() {
  return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get());
}
inline c10::impl::GenericList new_list() { return c10::impl::GenericList(c10::AnyType::get()); }

// "torch.FloatStorage" -> kFloat32; *ok false for anything else.
torch::ScalarType storage_class_dtype(const std::string& cls, bool* ok);
// kFloat32 -> "FloatStorage"; nullptr for dtypes torch.save has no storage class for.
const char* storage_class_name(torch::ScalarType t);

// ------------------------------------------------------------------ unpickler

// Errors name the file, the pickle offset of the opcode and, when known, the last dict key.
#define PKL_CHECK(cond, ...)                                                           \
  TORCH_CHECK(cond, path_, ": data.pkl byte ", op_pos_, ": ", __VA_ARGS__, key_hint(), \
              " (corrupt or unsupported torch.save pickle)")

// Reads one torch.save zip archive: PyTorchStreamReader for the zip, our own pickle
// interpreter for data.pkl.
class CheckpointReader {
 public:
  CheckpointReader(const std::string& path, const TorchLoadOptions& opt);

  c10::IValue load();

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


  std::string key_hint() const;

  // ---- raw reads
  const uint8_t* take(uint64_t n);
  uint8_t u8() { return *take(1); }
  std::string line();
  std::string str(uint64_t n);

  // ---- nesting
  // The longest chain of containers in `root` (lists, dicts, tuples), found without recursion;
  // deeper than kMaxNesting or cyclic is an error (flatten_tensors and IValue's destructor
  // recurse once per level: a 150,000-deep list would overflow the stack).
  static constexpr int64_t kMaxNesting = 400;
  static bool is_container(const c10::IValue& v);
  static std::vector<c10::IValue> children(const c10::IValue& v);
  void check_nesting(const c10::IValue& root);
  // Drops nested values level by level (children are moved out before a container dies), so
  // no destructor recursion happens however deep the value is.
  static void release_nested(std::vector<c10::IValue> todo);

  // ---- stack
  void push(c10::IValue v, Kind k = Kind::kValue) { stack_.push_back(Item{std::move(v), k}); }
  Item pop();
  Item& top();
  std::vector<Item> pop_mark();
  void push_string(std::string s);
  static bool is_dict(const Item& it) { return it.v.isGenericDict(); }

  // ---- memo
  void memo_put(uint64_t idx);
  void memo_get(uint64_t idx);

  // ---- values
  int64_t to_int(const c10::IValue& v, const char* what);
  std::vector<int64_t> to_ints(const c10::IValue& v, const char* what);
  // Integers of LONG1/LONG4: little-endian two's complement.
  c10::IValue read_long(uint64_t n);
  // Dict keys must be hashable IValues; anything else is keyed by its summary.
  c10::IValue dict_key(const c10::IValue& k);
  void setitem(Item& target, const c10::IValue& k, const c10::IValue& v);
  void append(Item& target, const c10::IValue& v);
  c10::IValue make_tuple(std::vector<Item> items);

  // An instance of a class we do not execute: a dict naming the class, plus its state.
  Item new_object(const std::string& cls, const c10::IValue& args);

  // REDUCE / NEWOBJ: the callables torch.save emits, everything else becomes an object.
  Item call(const std::string& fn, const c10::IValue& args_v);

  // UTF-8 text whose code points are < 256 -> those bytes.
  std::string latin1(const std::string& s);

  void build(Item& target, const Item& state);

  // ('storage', torch.FloatStorage, key, location, numel) -> the storage of record data/key.
  c10::IValue persistent_load(const c10::IValue& pid);

  // Where a record lies in the map (torch_zip.cpp).
  struct RecordSpan {
    bool stored = false;  // method 0, not encrypted: the bytes can be viewed in place
    uint64_t offset = 0, size = 0;
  };
  RecordSpan record_span(const std::string& rel);
  std::string record_prefix();
  c10::Storage read_storage(const std::string& key, uint64_t nbytes);

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, ...) with every index checked.
  c10::IValue rebuild_tensor(const c10::IValue& storage_v, const c10::IValue& offset_v,
                             const c10::IValue& size_v, const c10::IValue& stride_v);

  // run() dispatches each opcode to one of these; each returns false for opcodes it
  // does not handle (torch_unpickler_ops.cpp).
  c10::IValue run();
  bool op_stack(uint8_t op);
  bool op_scalar(uint8_t op);
  bool op_text_or_memo(uint8_t op);
  bool op_container(uint8_t op);
  bool op_object(uint8_t op);

  int64_t parse_int(const std::string& s);
  static std::string hex(uint8_t b);


  std::string path_;
  TorchLoadOptions opt_;
  std::shared_ptr<MappedFile> file_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
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

}  // namespace causvid::core::detail
