// data/prompt_cache.cpp: see prompt_cache.h.
#include "data/prompt_cache.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <map>
#include <mutex>
#include <unordered_set>

#include "core/fs.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "models/t5/tokenizer.h"
#include "models/t5/umt5.h"

namespace causvid::data {

namespace {

constexpr char kMetaKey[] = "__meta__";
constexpr char kFormat[] = "causvid-prompt-cache";
constexpr uint32_t kVersion = 1;

uint32_t dtype_code(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return 0;
    case torch::kBFloat16: return 1;
    case torch::kFloat16: return 2;
    default: TORCH_CHECK(false, "prompt cache: unsupported dtype ", t);
  }
}

torch::ScalarType code_dtype(uint32_t c, const std::string& where) {
  switch (c) {
    case 0: return torch::kFloat32;
    case 1: return torch::kBFloat16;
    case 2: return torch::kFloat16;
    default: TORCH_CHECK(false, where, ": unknown dtype code ", c);
  }
}

void put_u32(std::string& s, uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  s.append(b, 4);
}

uint32_t get_u32(const std::string& s, size_t off) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(s[off + i])) << (8 * i);
  return v;
}

uint64_t fnv1a64(const std::string& s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t mix64(uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Record {
  std::string cleaned;
  int64_t length = 0, dim = 0;
  torch::ScalarType dtype = torch::kFloat32;
  size_t data_offset = 0;
};

Record parse_record(const std::string& v, const std::string& where) {
  TORCH_CHECK(v.size() >= 24 && v.compare(0, 4, "CVPE") == 0, where, ": not a prompt record");
  TORCH_CHECK(get_u32(v, 4) == kVersion, where, ": record version ", get_u32(v, 4), ", want ",
              kVersion);
  Record r;
  r.length = get_u32(v, 8);
  r.dim = get_u32(v, 12);
  r.dtype = code_dtype(get_u32(v, 16), where);
  size_t pb = get_u32(v, 20);
  TORCH_CHECK(v.size() >= 24 + pb, where, ": truncated record");
  r.cleaned = v.substr(24, pb);
  r.data_offset = 24 + pb;
  size_t want = r.data_offset + static_cast<size_t>(r.length * r.dim) * c10::elementSize(r.dtype);
  TORCH_CHECK(v.size() == want, where, ": record of ", v.size(), " bytes, want ", want);
  return r;
}

std::string quoted(const std::string& p) {
  std::string s = p.size() > 200 ? p.substr(0, 200) + "..." : p;
  return "'" + s + "'";
}

}  // namespace

std::string prompt_cache_key(const std::string& prompt) {
  const std::string c = models::clean_prompt(prompt);
  uint64_t a = fnv1a64(c, 0xcbf29ce484222325ull);
  uint64_t b = mix64(fnv1a64(c, 0x84222325cbf29ce4ull) ^ (c.size() * 0x9e3779b97f4a7c15ull));
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return std::string("emb_") + buf;
}

torch::ScalarType parse_embed_dtype(const std::string& flag, const std::string& v) {
  if (v == "bf16" || v == "bfloat16") return torch::kBFloat16;
  if (v == "fp16" || v == "float16" || v == "half") return torch::kFloat16;
  if (v == "fp32" || v == "float32" || v == "float") return torch::kFloat32;
  TORCH_CHECK(false, flag, ": got '", v, "', want bf16, fp16 or fp32");
}

// ------------------------------------------------------------------ writer
PromptCacheWriter::PromptCacheWriter(const std::string& dir, int64_t text_len, int64_t dim,
                                     torch::ScalarType dtype, const std::string& encoder_desc,
                                     const std::string& tokenizer_desc, size_t initial_map_size)
    : lmdb_(dir, initial_map_size),
      text_len_(text_len),
      dim_(dim),
      dtype_(dtype),
      encoder_desc_(encoder_desc),
      tokenizer_desc_(tokenizer_desc) {
  dtype_code(dtype);
  if (auto m = lmdb_.get(kMetaKey)) {
    auto j = nlohmann::json::parse(*m);
    TORCH_CHECK(j.value("text_len", 0) == text_len && j.value("dim", 0) == dim &&
                    j.value("dtype", "") == core::safetensors_dtype_name(dtype),
                dir, ": existing cache has text_len ", j.value("text_len", 0), ", dim ",
                j.value("dim", 0), ", dtype ", j.value("dtype", ""), "; want ", text_len, ", ",
                dim, ", ", core::safetensors_dtype_name(dtype));
    count_ = j.value("count", 0);
  }
}

void PromptCacheWriter::add(const std::vector<std::string>& prompts, const torch::Tensor& emb_NLC,
                            const std::vector<int64_t>& lengths) {
  const int64_t n = static_cast<int64_t>(prompts.size());
  TORCH_CHECK(emb_NLC.dim() == 3 && emb_NLC.size(0) == n && emb_NLC.size(1) == text_len_ &&
                  emb_NLC.size(2) == dim_,
              lmdb_.path(), ": embeddings of shape ", emb_NLC.sizes(), ", want [", n, ", ",
              text_len_, ", ", dim_, "]");
  TORCH_CHECK(static_cast<int64_t>(lengths.size()) == n, lmdb_.path(), ": ", lengths.size(),
              " lengths for ", n, " prompts");
  auto emb = emb_NLC.to(torch::kCPU, dtype_).contiguous();
  const size_t row_bytes = static_cast<size_t>(dim_) * c10::elementSize(dtype_);
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(lengths[i] >= 1 && lengths[i] <= text_len_, lmdb_.path(), ": length ",
                lengths[i], " of prompt ", quoted(prompts[i]), ", want 1..", text_len_);
    const std::string cleaned = models::clean_prompt(prompts[i]);
    std::string v = "CVPE";
    put_u32(v, kVersion);
    put_u32(v, static_cast<uint32_t>(lengths[i]));
    put_u32(v, static_cast<uint32_t>(dim_));
    put_u32(v, dtype_code(dtype_));
    put_u32(v, static_cast<uint32_t>(cleaned.size()));
    v += cleaned;
    const char* base = static_cast<const char*>(emb[i].data_ptr());
    v.append(base, row_bytes * lengths[i]);
    lmdb_.put(prompt_cache_key(prompts[i]), std::move(v));
    ++count_;
  }
}

void PromptCacheWriter::finish() {
  lmdb_.commit();
  // Count the entries actually present (re-embedding a prompt overwrites its entry).
  int64_t entries = 0;
  lmdb_.for_each([&](std::string_view k, std::string_view) {
    if (k.rfind("emb_", 0) == 0) ++entries;
    return true;
  });
  count_ = entries;
  nlohmann::json j = {{"format", kFormat},
                      {"version", kVersion},
                      {"text_len", text_len_},
                      {"dim", dim_},
                      {"dtype", core::safetensors_dtype_name(dtype_)},
                      {"count", count_},
                      {"encoder", encoder_desc_},
                      {"tokenizer", tokenizer_desc_}};
  lmdb_.put(kMetaKey, j.dump());
  lmdb_.commit();
}

// ------------------------------------------------------------------ reader
PromptCache::PromptCache(const std::string& dir, torch::ScalarType output_dtype)
    : dir_(dir), lmdb_(dir), output_dtype_(output_dtype) {
  auto m = lmdb_.get(kMetaKey);
  TORCH_CHECK(m, dir, ": not a prompt cache (no __meta__ record; written by `causvid "
                      "embed-prompts`, unfinished?)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(*m);
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, dir, ": __meta__ is not JSON: ", e.what());
  }
  TORCH_CHECK(j.value("format", "") == kFormat, dir, ": __meta__ format '",
              j.value("format", ""), "', want '", kFormat, "'");
  text_len_ = j.value("text_len", int64_t(0));
  dim_ = j.value("dim", int64_t(0));
  count_ = j.value("count", int64_t(0));
  stored_dtype_ = core::safetensors_dtype(j.value("dtype", "BF16"));
  TORCH_CHECK(text_len_ > 0 && dim_ > 0, dir, ": __meta__ has text_len ", text_len_, ", dim ",
              dim_);
}

int64_t PromptCache::length(const std::string& prompt) const {
  auto key = prompt_cache_key(prompt);
  auto v = lmdb_.get(key);
  if (!v) return 0;
  return parse_record(*v, dir_ + "/" + key).length;
}

bool PromptCache::contains(const std::string& prompt) const {
  return lmdb_.contains(prompt_cache_key(prompt));
}

torch::Tensor PromptCache::encode(const std::vector<std::string>& prompts) {
  const int64_t n = static_cast<int64_t>(prompts.size());
  auto out = torch::zeros({n, text_len_, dim_}, torch::kFloat32);
  for (int64_t i = 0; i < n; ++i) {
    const std::string key = prompt_cache_key(prompts[i]);
    auto v = lmdb_.get(key);
    TORCH_CHECK(v, dir_, ": prompt not in the cache: ", quoted(prompts[i]),
                " (run `causvid embed-prompts` with a prompt file that holds it)");
    Record r = parse_record(*v, dir_ + "/" + key);
    const std::string cleaned = models::clean_prompt(prompts[i]);
    TORCH_CHECK(r.cleaned == cleaned, dir_, ": key ", key, " holds ", quoted(r.cleaned),
                ", not ", quoted(cleaned), " (hash collision)");
    TORCH_CHECK(r.dim == dim_ && r.length <= text_len_ && r.dtype == stored_dtype_, dir_,
                ": record of ", quoted(prompts[i]), " has length ", r.length, ", dim ", r.dim,
                "; cache says text_len ", text_len_, ", dim ", dim_);
    auto rows = torch::from_blob(const_cast<char*>(v->data() + r.data_offset),
                                 {r.length, r.dim}, torch::TensorOptions().dtype(r.dtype));
    out[i].narrow(0, 0, r.length).copy_(rows);
  }
  return out.to(output_dtype_);
}

// ------------------------------------------------------------------ factory
namespace {

struct EncoderRegistry {
  std::mutex mu;
  std::map<std::string, TextEncoderFactory> factories;
};

EncoderRegistry& encoder_registry() {
  static EncoderRegistry r;
  return r;
}

}  // namespace

void register_text_encoder(const std::string& name, TextEncoderFactory factory) {
  TORCH_CHECK(!name.empty() && factory, "register_text_encoder: want a name and a factory");
  auto& r = encoder_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.factories[name] = std::move(factory);
}

const TextEncoderFactory* find_text_encoder(const std::string& name) {
  auto& r = encoder_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.factories.find(name);
  return it == r.factories.end() ? nullptr : &it->second;  // entries are never erased
}

std::vector<std::string> text_encoder_names() {
  auto& r = encoder_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& kv : r.factories) names.push_back(kv.first);
  return names;
}

std::unique_ptr<models::TextConditioner> make_text_conditioner(const TextConditionerOptions& o) {
  if (!o.cache_dir.empty()) {
    auto c = std::make_unique<PromptCache>(o.cache_dir, o.output_dtype);
    TORCH_CHECK(c->text_len() == o.text_len, o.cache_dir, ": cache text_len ", c->text_len(),
                ", want ", o.text_len);
    LOG_INFO("text conditioning from prompt cache %s (%d prompts)", o.cache_dir, c->size());
    return c;
  }
  if (const TextEncoderFactory* f = find_text_encoder(o.encoder_path)) return (*f)(o);
  TORCH_CHECK(!o.encoder_path.empty(),
              "text conditioning: give a prompt cache or umT5 encoder weights");
  TORCH_CHECK(!o.tokenizer_path.empty(), "text conditioning: umT5 weights ", o.encoder_path,
              " given without a tokenizer path");
  auto tok = std::make_shared<models::UMT5Tokenizer>(o.tokenizer_path, o.text_len);
  auto enc = models::load_umt5_encoder(models::read_umt5_weights(o.encoder_path), o.encoder_path,
                                       o.compute_dtype, o.device);
  return std::make_unique<models::UMT5TextEncoder>(enc, tok, o.output_dtype);
}

// ------------------------------------------------------------------ embed_prompts
void embed_prompts(models::UMT5TextEncoder& encoder, const std::vector<std::string>& prompts,
                   const std::string& out_dir, torch::ScalarType dtype, int64_t batch_size,
                   bool overwrite, const std::string& encoder_desc,
                   const std::function<void(int64_t, int64_t)>& progress) {
  namespace fs = std::filesystem;
  TORCH_CHECK(batch_size >= 1, "--batch-size: got ", batch_size, ", want >= 1");
  std::error_code ec;
  TORCH_CHECK(overwrite || !fs::exists(out_dir, ec), out_dir,
              ": already exists (pass --overwrite to replace it)");
  // Unique prompts by cleaned text (the cache key).
  std::vector<std::string> todo;
  std::unordered_set<std::string> seen;
  for (const auto& p : prompts)
    if (seen.insert(prompt_cache_key(p)).second) todo.push_back(p);
  if (todo.size() < prompts.size())
    LOG_INFO("%d duplicate prompts (after cleaning) encoded once", prompts.size() - todo.size());

  fs::path out(out_dir);
  if (!out.parent_path().empty()) core::make_dirs(out.parent_path().string());
  const std::string tmp = out_dir + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp, ec);
  try {
    PromptCacheWriter w(tmp, encoder.text_len(), encoder.dim(), dtype, encoder_desc,
                        encoder.tokenizer().model_path());
    const int64_t total = static_cast<int64_t>(todo.size());
    for (int64_t b = 0; b < total; b += batch_size) {
      std::vector<std::string> batch(todo.begin() + b,
                                     todo.begin() + std::min(total, b + batch_size));
      std::vector<int64_t> lengths;
      auto emb = encoder.encode(batch, &lengths);
      w.add(batch, emb, lengths);
      if (progress) progress(std::min(total, b + batch_size), total);
    }
    w.finish();
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  if (fs::exists(out_dir, ec)) fs::remove_all(out_dir);
  fs::rename(tmp, out_dir);
}

}  // namespace causvid::data
