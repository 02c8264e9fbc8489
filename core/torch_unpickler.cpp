// core/torch_unpickler.cpp: CheckpointReader's pickle machine (core/torch_pickle.h) minus the
// opcode switch (torch_unpickler_ops.cpp): raw reads, the stack and memo, nesting checks, the
// callables torch.save emits (pickle.py's load_reduce / find_class, torch/_utils.py's
// _rebuild_tensor_v2), persistent ids (torch/serialization.py persistent_load).
#include <c10/util/strides.h>

#include <unordered_set>

#include "core/torch_pickle.h"

namespace causvid::core::detail {

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

c10::IValue CheckpointReader::load() {
  size_t got = 0;
  try {
    std::tie(pkl_, got) = reader_->getRecord("data.pkl");
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, path_, ": cannot read record ", prefix_, "data.pkl: ",
                e.what_without_backtrace());
  }
  data_ = static_cast<const uint8_t*>(pkl_.get());
  size_ = got;
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

std::string CheckpointReader::key_hint() const {
  return last_key_.empty() ? std::string() : " (near key '" + last_key_ + "')";
}

const uint8_t* CheckpointReader::take(uint64_t n) {
  PKL_CHECK(n <= size_ - pos_, "pickle truncated: want ", n, " more bytes, ", size_ - pos_,
            " left");
  const uint8_t* p = data_ + pos_;
  pos_ += n;
  return p;
}

std::string CheckpointReader::line() {
  const uint8_t* start = data_ + pos_;
  const void* nl = std::memchr(start, '\n', size_ - pos_);
  PKL_CHECK(nl != nullptr, "pickle truncated: unterminated text argument");
  const size_t len = static_cast<const uint8_t*>(nl) - start;
  pos_ += len + 1;
  return std::string(reinterpret_cast<const char*>(start), len);
}

std::string CheckpointReader::str(uint64_t n) {
  const uint8_t* p = take(n);
  return std::string(reinterpret_cast<const char*>(p), n);
}

bool CheckpointReader::is_container(const c10::IValue& v) {
  return v.isList() || v.isGenericDict() || v.isTuple();
}

std::vector<c10::IValue> CheckpointReader::children(const c10::IValue& v) {
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

void CheckpointReader::check_nesting(const c10::IValue& root) {
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
void CheckpointReader::release_nested(std::vector<c10::IValue> todo) {
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

auto CheckpointReader::pop() -> Item {
  PKL_CHECK(stack_.size() > (marks_.empty() ? 0 : marks_.back()), "stack underflow");
  Item it = std::move(stack_.back());
  stack_.pop_back();
  return it;
}

auto CheckpointReader::top() -> Item& {
  PKL_CHECK(!stack_.empty(), "stack underflow");
  return stack_.back();
}

auto CheckpointReader::pop_mark() -> std::vector<Item> {
  PKL_CHECK(!marks_.empty(), "no MARK on the stack");
  const size_t m = marks_.back();
  marks_.pop_back();
  PKL_CHECK(m <= stack_.size(), "MARK above the stack");
  std::vector<Item> items(std::make_move_iterator(stack_.begin() + m),
                          std::make_move_iterator(stack_.end()));
  stack_.resize(m);
  return items;
}

void CheckpointReader::push_string(std::string s) {
  // Remember strings pushed where a dict key goes, for error messages.
  const bool after_dict = !stack_.empty() && is_dict(stack_.back());
  const bool in_setitems =
      !marks_.empty() && marks_.back() > 0 && marks_.back() <= stack_.size() &&
      (stack_.size() - marks_.back()) % 2 == 0 && is_dict(stack_[marks_.back() - 1]);
  if (after_dict || in_setitems) last_key_ = s;
  push(c10::IValue(std::move(s)));
}


// ---- memo
void CheckpointReader::memo_put(uint64_t idx) {
  PKL_CHECK(!stack_.empty(), "memo put on an empty stack");
  PKL_CHECK(idx < (uint64_t(1) << 32), "memo index ", idx, " too large");
  memo_[idx] = stack_.back();
}

void CheckpointReader::memo_get(uint64_t idx) {
  auto it = memo_.find(idx);
  PKL_CHECK(it != memo_.end(), "memo index ", idx, " was never stored");
  stack_.push_back(it->second);
}

int64_t CheckpointReader::to_int(const c10::IValue& v, const char* what) {
  PKL_CHECK(v.isInt(), what, " is ", v.tagKind(), ", want int");
  return v.toInt();
}

std::vector<int64_t> CheckpointReader::to_ints(const c10::IValue& v, const char* what) {
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
c10::IValue CheckpointReader::read_long(uint64_t n) {
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
c10::IValue CheckpointReader::dict_key(const c10::IValue& k) {
  if (k.isString() || k.isInt() || k.isBool() || k.isDouble()) return k;
  return c10::IValue(ivalue_summary(k, 200));
}

void CheckpointReader::setitem(Item& target, const c10::IValue& k, const c10::IValue& v) {
  PKL_CHECK(target.v.isGenericDict(), "SETITEM on ", target.v.tagKind(), ", want a dict");
  target.v.toGenericDict().insert_or_assign(dict_key(k), v);
}

void CheckpointReader::append(Item& target, const c10::IValue& v) {
  if (target.kind == Kind::kObject) {
    auto d = target.v.toGenericDict();
    if (!d.contains("__items__")) d.insert("__items__", new_list());
    d.at("__items__").toList().push_back(v);
    return;
  }
  PKL_CHECK(target.v.isList(), "APPEND on ", target.v.tagKind(), ", want a list");
  target.v.toList().push_back(v);
}

c10::IValue CheckpointReader::make_tuple(std::vector<Item> items) {
  std::vector<c10::IValue> v;
  v.reserve(items.size());
  for (auto& i : items) v.push_back(std::move(i.v));
  return c10::ivalue::Tuple::create(std::move(v));
}

// An instance of a class we do not execute: a dict naming the class, plus its state.
auto CheckpointReader::new_object(const std::string& cls, const c10::IValue& args) -> Item {
  auto d = new_dict();
  d.insert("__class__", cls);
  if (args.isTuple() && !args.toTupleRef().elements().empty()) d.insert("__args__", args);
  return Item{c10::IValue(d), Kind::kObject};
}

// REDUCE / NEWOBJ: the callables torch.save emits, everything else becomes an object.
auto CheckpointReader::call(const std::string& fn, const c10::IValue& args_v) -> Item {
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
std::string CheckpointReader::latin1(const std::string& s) {
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

void CheckpointReader::build(Item& target, const Item& state) {
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
c10::IValue CheckpointReader::persistent_load(const c10::IValue& pid) {
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

c10::IValue CheckpointReader::rebuild_tensor(const c10::IValue& storage_v, const c10::IValue& offset_v,
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


}  // namespace causvid::core::detail
