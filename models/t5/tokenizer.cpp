// models/t5/tokenizer.cpp: see tokenizer.h. Ports wan/modules/tokenizers.py
// (basic_clean, whitespace_clean, HuggingfaceTokenizer.__call__).
#include "models/t5/tokenizer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/fs.h"
#include "core/utf8.h"
#include "core/log.h"

namespace causvid::models {

namespace {

// ------------------------------------------------------------------ UTF-8
bool decode_utf8(const std::string& s, std::vector<char32_t>* out, size_t* bad) {
  size_t i = 0, n = s.size();
  auto fail = [&](size_t at) {
    if (bad) *bad = at;
    return false;
  };
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    char32_t cp;
    int len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      len = 4;
    } else {
      return fail(i);
    }
    if (i + len > n) return fail(i);
    for (int k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return fail(i);
      cp = (cp << 6) | (cc & 0x3F);
    }
    static const char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return fail(i);
    if (out) out->push_back(cp);
    i += len;
  }
  return true;
}

void append_utf8(std::string& s, char32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string to_utf8(const std::u32string& u) {
  std::string s;
  for (char32_t c : u) append_utf8(s, c);
  return s;
}

// Python's str.isspace() (what `\s` and strip() match on str).
bool is_py_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

// ------------------------------------------------------------------ ftfy (reduced)
std::u32string fix_text(const std::u32string& in) {
  std::u32string out;
  out.reserve(in.size());
  for (char32_t c : in) {
    if (c >= 0xFF01 && c <= 0xFF5E) {
      c = c - 0xFF01 + 0x21;  // fullwidth ASCII variants (NFKC)
    } else if (c == 0x3000) {
      c = U' ';  // ideographic space
    } else if (c >= 0xFFE0 && c <= 0xFFE6) {
      static const char32_t kMap[7] = {0xA2, 0xA3, 0xAC, 0xAF, 0xA6, 0xA5, 0x20A9};
      c = kMap[c - 0xFFE0];
    } else if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) {
      c = U'\'';  // ftfy uncurl_quotes
    } else if (c >= 0x201C && c <= 0x201F) {
      c = U'"';
    }
    out += c;
  }
  return out;
}

// ------------------------------------------------------------------ html.unescape (basic)
const std::unordered_map<std::string, std::u32string>& named_entities() {
  static const std::unordered_map<std::string, std::u32string> kMap = {
      {"amp", U"&"},       {"lt", U"<"},         {"gt", U">"},         {"quot", U"\""},
      {"apos", U"'"},      {"nbsp", U"\u00A0"},  {"copy", U"\u00A9"},  {"reg", U"\u00AE"},
      {"trade", U"\u2122"}, {"hellip", U"\u2026"}, {"mdash", U"\u2014"}, {"ndash", U"\u2013"},
      {"lsquo", U"\u2018"}, {"rsquo", U"\u2019"}, {"ldquo", U"\u201C"}, {"rdquo", U"\u201D"},
      {"laquo", U"\u00AB"}, {"raquo", U"\u00BB"}, {"deg", U"\u00B0"},   {"times", U"\u00D7"},
      {"divide", U"\u00F7"}, {"euro", U"\u20AC"}, {"pound", U"\u00A3"}, {"yen", U"\u00A5"},
      {"cent", U"\u00A2"}, {"sect", U"\u00A7"},  {"para", U"\u00B6"},  {"middot", U"\u00B7"},
      {"bull", U"\u2022"}, {"plusmn", U"\u00B1"}, {"micro", U"\u00B5"}, {"frac12", U"\u00BD"},
      {"eacute", U"\u00E9"}, {"egrave", U"\u00E8"}, {"aacute", U"\u00E1"}, {"ouml", U"\u00F6"},
      {"uuml", U"\u00FC"}, {"auml", U"\u00E4"}, {"szlig", U"\u00DF"}, {"ntilde", U"\u00F1"},
  };
  return kMap;
}

// Entities Python also accepts without the trailing ';' (HTML5 legacy names).
bool legacy_entity(const std::string& name) {
  static const char* kLegacy[] = {"amp",   "lt",    "gt",   "quot",   "nbsp",   "copy",
                                  "reg",   "laquo", "raquo", "deg",   "times",  "divide",
                                  "pound", "yen",   "cent", "sect",   "para",   "middot",
                                  "plusmn", "micro", "frac12", "eacute", "egrave", "aacute",
                                  "ouml",  "uuml",  "auml", "szlig",  "ntilde"};
  for (const char* l : kLegacy)
    if (name == l) return true;
  return false;
}

bool is_ascii_alnum(char32_t c) {
  return (c >= U'0' && c <= U'9') || (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z');
}

char32_t numeric_ref(uint64_t v) {
  // Python's html.unescape: invalid code points become U+FFFD; 0x80..0x9F use cp1252.
  static const char32_t kCp1252[32] = {
      0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0x8D,   0x017D, 0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
  if (v >= 0x80 && v <= 0x9F) return kCp1252[v - 0x80];
  if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0xFFFD;
  return static_cast<char32_t>(v);
}

std::u32string html_unescape(const std::u32string& s) {
  std::u32string out;
  size_t i = 0, n = s.size();
  while (i < n) {
    if (s[i] != U'&') {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    if (j < n && s[j] == U'#') {
      ++j;
      bool hex = j < n && (s[j] == U'x' || s[j] == U'X');
      if (hex) ++j;
      size_t start = j;
      uint64_t v = 0;
      while (j < n && j - start < 16) {
        char32_t c = s[j];
        int d = -1;
        if (c >= U'0' && c <= U'9') d = c - U'0';
        else if (hex && c >= U'a' && c <= U'f') d = c - U'a' + 10;
        else if (hex && c >= U'A' && c <= U'F') d = c - U'A' + 10;
        if (d < 0) break;
        v = v * (hex ? 16 : 10) + d;
        ++j;
      }
      if (j == start) {
        out += s[i++];
        continue;
      }
      if (j < n && s[j] == U';') ++j;
      out += numeric_ref(v);
      i = j;
      continue;
    }
    size_t start = j;
    while (j < n && j - start < 32 && is_ascii_alnum(s[j])) ++j;
    std::string name;
    for (size_t k = start; k < j; ++k) name += static_cast<char>(s[k]);
    const auto& table = named_entities();
    auto it = table.find(name);
    if (it != table.end() && j < n && s[j] == U';') {
      out += it->second;
      i = j + 1;
      continue;
    }
    // Longest legacy prefix without ';' (Python: "&ampx" -> "&x").
    bool done = false;
    for (size_t len = name.size(); len >= 2 && !done; --len) {
      std::string p = name.substr(0, len);
      if (legacy_entity(p)) {
        out += table.at(p);
        i = start + len;
        done = true;
      }
    }
    if (!done) out += s[i++];
  }
  return out;
}

std::u32string strip(const std::u32string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_py_space(s[b])) ++b;
  while (e > b && is_py_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::u32string collapse_whitespace(const std::u32string& s) {
  std::u32string out;
  bool in_space = false;
  for (char32_t c : s) {
    if (is_py_space(c)) {
      if (!in_space) out += U' ';
      in_space = true;
    } else {
      out += c;
      in_space = false;
    }
  }
  return strip(out);
}

}  // namespace

bool is_valid_utf8(const std::string& s, size_t* bad_offset) {
  return core::is_valid_utf8(s, bad_offset);
}

std::string clean_prompt(const std::string& text) {
  std::vector<char32_t> cps;
  size_t bad = 0;
  TORCH_CHECK(decode_utf8(text, &cps, &bad), "prompt: invalid UTF-8 at byte ", bad);
  std::u32string u(cps.begin(), cps.end());
  // basic_clean: ftfy.fix_text, html.unescape twice, strip; whitespace_clean.
  u = strip(html_unescape(html_unescape(fix_text(u))));
  return to_utf8(collapse_whitespace(u));
}

// ------------------------------------------------------------------ the shim
struct SpmShim {
  void* lib = nullptr;
  std::string path;
  void* (*load)(const char*, char*, int) = nullptr;
  void (*free)(void*) = nullptr;
  int (*piece_size)(void*) = nullptr;
  int (*special_id)(void*, int) = nullptr;
  int (*encode)(void*, const char*, int, int*, int, char*, int) = nullptr;
  int (*id_to_piece)(void*, int, char*, int) = nullptr;
};

std::vector<std::string> spm_shim_candidates() {
  std::vector<std::string> c;
  if (const char* env = std::getenv("CAUSVID_SPM_SHIM")) c.push_back(env);
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) c.push_back((exe.parent_path() / "libcausvid_spm.so").string());
#ifdef CAUSVID_SPM_SHIM
  c.push_back(CAUSVID_SPM_SHIM);
#endif
  return c;
}

namespace {

template <typename F>
void bind(void* lib, const char* name, F*& fn, const std::string& path) {
  void* sym = ::dlsym(lib, name);
  TORCH_CHECK(sym, path, ": symbol ", name, " missing (stale libcausvid_spm.so?)");
  fn = reinterpret_cast<F*>(sym);
}

// Loaded once per process; never unloaded (sentencepiece keeps static state).
const SpmShim* load_shim_once() {
  static std::mutex mu;
  static std::unique_ptr<SpmShim> shim;
  std::lock_guard<std::mutex> lock(mu);
  if (shim) return shim.get();
  std::string tried;
  for (const auto& p : spm_shim_candidates()) {
    if (!core::file_exists(p)) {
      tried += "\n  " + p + " (absent)";
      continue;
    }
    // RTLD_DEEPBIND: the shim and libsentencepiece bind to their own protobuf-lite symbols
    // before the global scope (which holds LibTorch's libprotobuf.so.32).
    void* lib = ::dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!lib) {
      const char* e = ::dlerror();
      tried += "\n  " + p + " (" + (e ? e : "dlopen failed") + ")";
      continue;
    }
    auto s = std::make_unique<SpmShim>();
    s->lib = lib;
    s->path = p;
    bind(lib, "cv_spm_load", s->load, p);
    bind(lib, "cv_spm_free", s->free, p);
    bind(lib, "cv_spm_piece_size", s->piece_size, p);
    bind(lib, "cv_spm_special_id", s->special_id, p);
    bind(lib, "cv_spm_encode", s->encode, p);
    bind(lib, "cv_spm_id_to_piece", s->id_to_piece, p);
    LOG_DEBUG("sentencepiece shim: %s", p);
    shim = std::move(s);
    return shim.get();
  }
  TORCH_CHECK(false,
              "sentencepiece shim libcausvid_spm.so not found or not loadable (set "
              "CAUSVID_SPM_SHIM to its path; it needs libsentencepiece.so.0). Tried:",
              tried);
}

}  // namespace

UMT5Tokenizer::UMT5Tokenizer(const std::string& path, int64_t seq_len) : seq_len_(seq_len) {
  TORCH_CHECK(seq_len >= 1, "tokenizer seq_len: got ", seq_len, ", want >= 1");
  namespace fs = std::filesystem;
  std::error_code ec;
  model_path_ = path;
  if (fs::is_directory(path, ec)) {  // google/umt5-xxl, a diffusers tokenizer/ or its pipeline
    model_path_ = (fs::path(path) / "spiece.model").string();
    if (!fs::exists(model_path_, ec) && fs::exists(fs::path(path) / "tokenizer" / "spiece.model", ec))
      model_path_ = (fs::path(path) / "tokenizer" / "spiece.model").string();
  }
  TORCH_CHECK(fs::is_regular_file(model_path_, ec), model_path_,
              ": tokenizer model not found (want a sentencepiece .model file or the "
              "google/umt5-xxl folder holding spiece.model)");
  shim_ = load_shim_once();
  char err[1024] = {0};
  handle_ = shim_->load(model_path_.c_str(), err, sizeof(err));
  TORCH_CHECK(handle_, model_path_, ": not a sentencepiece model: ", err);
  vocab_size_ = shim_->piece_size(handle_);
  pad_id_ = shim_->special_id(handle_, 0);
  eos_id_ = shim_->special_id(handle_, 1);
  unk_id_ = shim_->special_id(handle_, 2);
  // umT5's spiece.model: pad 0, eos 1, unk 2. The HF tokenizer pads with the pad id.
  TORCH_CHECK(eos_id_ >= 0, model_path_, ": the model defines no EOS piece");
  if (pad_id_ < 0) pad_id_ = 0;
  const auto dir = fs::path(model_path_).parent_path();
  auto read_json = [&](const char* name) {
    std::ifstream in(dir / name);
    return in ? nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false) : nlohmann::json();
  };
  auto cfg = read_json("tokenizer_config.json");
  if (cfg.is_object() && cfg.contains("extra_ids") && cfg["extra_ids"].is_number_integer()) {
    extra_ids_ = cfg["extra_ids"].get<int64_t>();
  } else if (auto m = read_json("special_tokens_map.json");
             m.is_object() && m.contains("additional_special_tokens") &&
             m["additional_special_tokens"].is_array()) {
    extra_ids_ = static_cast<int64_t>(m["additional_special_tokens"].size());
  }
}

std::unique_ptr<UMT5Tokenizer> UMT5Tokenizer::bytes(int64_t seq_len) {
  TORCH_CHECK(seq_len >= 1, "tokenizer seq_len: got ", seq_len, ", want >= 1");
  std::unique_ptr<UMT5Tokenizer> t(new UMT5Tokenizer());
  t->model_path_ = "<bytes>";
  t->seq_len_ = seq_len;
  t->vocab_size_ = 256 + 3;
  return t;
}

UMT5Tokenizer::~UMT5Tokenizer() {
  if (handle_ && shim_) shim_->free(handle_);
}

// The HF tokenizer splits out its special tokens wherever their text occurs (</s>, <pad>,
// <unk>, <extra_id_N>): each becomes its id, the text between is encoded on its own.
std::vector<int64_t> UMT5Tokenizer::encode_ids(const std::string& cleaned) const {
  if (!shim_) return encode_plain(cleaned);
  std::vector<int64_t> ids;
  size_t start = 0;
  for (size_t pos = cleaned.find('<'); pos != std::string::npos; pos = cleaned.find('<', pos + 1)) {
    int64_t id = -1;
    size_t len = 0;
    for (const auto& [text, tid] : {std::pair<const char*, int64_t>{"</s>", eos_id_},
                                    {"<pad>", pad_id_}, {"<unk>", unk_id_}})
      if (cleaned.compare(pos, std::strlen(text), text) == 0) id = tid, len = std::strlen(text);
    const std::string kExtra = "<extra_id_";
    if (id < 0 && cleaned.compare(pos, kExtra.size(), kExtra) == 0) {
      size_t e = pos + kExtra.size(), d = e;
      while (d < cleaned.size() && d - e < 6 && std::isdigit(static_cast<unsigned char>(cleaned[d]))) ++d;
      const bool leading_zero = d - e > 1 && cleaned[e] == '0';  // <extra_id_01> is text
      if (d > e && !leading_zero && d < cleaned.size() && cleaned[d] == '>') {
        const int64_t n = std::stoll(cleaned.substr(e, d - e));
        if (n < extra_ids_) id = vocab_size_ + extra_ids_ - 1 - n, len = d + 1 - pos;
      }
    }
    if (id < 0) continue;
    auto seg = encode_plain(cleaned.substr(start, pos - start));
    ids.insert(ids.end(), seg.begin(), seg.end());
    ids.push_back(id);
    start = pos + len;
    pos = start - 1;
  }
  auto seg = encode_plain(cleaned.substr(start));
  ids.insert(ids.end(), seg.begin(), seg.end());
  return ids;
}

std::vector<int64_t> UMT5Tokenizer::encode_plain(const std::string& cleaned) const {
  size_t bad = 0;
  TORCH_CHECK(is_valid_utf8(cleaned, &bad), "tokenizer: invalid UTF-8 at byte ", bad);
  TORCH_CHECK(cleaned.size() < (1u << 30), "tokenizer: text too long (", cleaned.size(),
              " bytes)");
  if (!shim_) {  // byte-level stand-in
    std::vector<int64_t> ids;
    for (unsigned char c : cleaned) ids.push_back(static_cast<int64_t>(c) + 3);
    return ids;
  }
  std::vector<int> buf(cleaned.size() + 8);
  char err[1024] = {0};
  int n = shim_->encode(handle_, cleaned.data(), static_cast<int>(cleaned.size()), buf.data(),
                        static_cast<int>(buf.size()), err, sizeof(err));
  TORCH_CHECK(n >= 0, model_path_, ": sentencepiece encode failed: ", err);
  if (n > static_cast<int>(buf.size())) {
    buf.resize(n);
    n = shim_->encode(handle_, cleaned.data(), static_cast<int>(cleaned.size()), buf.data(),
                      static_cast<int>(buf.size()), err, sizeof(err));
    TORCH_CHECK(n >= 0, model_path_, ": sentencepiece encode failed: ", err);
  }
  return std::vector<int64_t>(buf.begin(), buf.begin() + n);
}

std::string UMT5Tokenizer::id_to_piece(int64_t id) const {
  TORCH_CHECK(id >= 0 && id < vocab_size_, "tokenizer: id ", id, " out of range [0, ",
              vocab_size_, ")");
  if (!shim_) return id < 3 ? std::string(id == 1 ? "</s>" : id == 2 ? "<unk>" : "<pad>")
                            : std::string(1, static_cast<char>(id - 3));
  char buf[512];
  int n = shim_->id_to_piece(handle_, static_cast<int>(id), buf, sizeof(buf));
  TORCH_CHECK(n >= 0, "tokenizer: id ", id, " has no piece");
  return std::string(buf);
}

TokenBatch UMT5Tokenizer::operator()(const std::vector<std::string>& prompts) const {
  const int64_t n = static_cast<int64_t>(prompts.size());
  TokenBatch b;
  b.ids = torch::full({n, seq_len_}, pad_id_, torch::kInt64);
  b.mask = torch::zeros({n, seq_len_}, torch::kInt64);
  auto ids_a = b.ids.accessor<int64_t, 2>();
  auto mask_a = b.mask.accessor<int64_t, 2>();
  for (int64_t r = 0; r < n; ++r) {
    std::vector<int64_t> ids = encode_ids(clean_prompt(prompts[r]));
    // T5TokenizerFast truncation keeps room for the EOS it appends.
    if (static_cast<int64_t>(ids.size()) > seq_len_ - 1) ids.resize(seq_len_ - 1);
    ids.push_back(eos_id_);
    for (size_t j = 0; j < ids.size(); ++j) {
      ids_a[r][j] = ids[j];
      mask_a[r][j] = 1;
    }
    b.lengths.push_back(static_cast<int64_t>(ids.size()));
  }
  return b;
}

}  // namespace causvid::models
