// core/torch_unpickler_ops.cpp: CheckpointReader::run(), the opcode loop of pickle.py's
// Unpickler.load for protocols 0..5 as torch.save emits them, split by opcode family.
#include "core/torch_pickle.h"

namespace causvid::core::detail {

c10::IValue CheckpointReader::run() {
  while (true) {
    op_pos_ = pos_;
    const uint8_t op = u8();
    if (op == '.') {  // STOP
      Item result = pop();
      return result.v;
    }
    if (op_stack(op) || op_scalar(op) || op_text_or_memo(op) || op_container(op) ||
        op_object(op))
      continue;
    PKL_CHECK(false, "unsupported pickle opcode 0x", hex(op));
  }
}

// PROTO, FRAME, empty containers, MARK, POP, POP_MARK, DUP.
bool CheckpointReader::op_stack(uint8_t op) {
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
    case '0':  // POP
      pop();
      break;
    case '1':  // POP_MARK
      pop_mark();
      break;
    case '2':  // DUP
      stack_.push_back(top());
      break;
    default:
      return false;
  }
  return true;
}

// None, bools, ints, floats.
bool CheckpointReader::op_scalar(uint8_t op) {
  switch (op) {
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
    default:
      return false;
  }
  return true;
}

// Strings, bytes and the memo.
bool CheckpointReader::op_text_or_memo(uint8_t op) {
  switch (op) {
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
    default:
      return false;
  }
  return true;
}

// Tuples, lists, sets, dicts and their item opcodes.
bool CheckpointReader::op_container(uint8_t op) {
  switch (op) {
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
    default:
      return false;
  }
  return true;
}

// Globals, calls (REDUCE, NEWOBJ), BUILD and persistent ids.
bool CheckpointReader::op_object(uint8_t op) {
  switch (op) {
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
    default:
      return false;
  }
  return true;
}

int64_t CheckpointReader::parse_int(const std::string& s) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  PKL_CHECK(!s.empty() && end && *end == '\0' && errno == 0, "bad integer '", s, "'");
  return v;
}

std::string CheckpointReader::hex(uint8_t b) {
  static const char* kHex = "0123456789abcdef";
  return std::string{kHex[b >> 4], kHex[b & 15]};
}

}  // namespace causvid::core::detail
