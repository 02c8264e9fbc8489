// data/prompt_cache.h: precomputed umT5 prompt embeddings in an LMDB, so training and
// inference can run without holding the 5.7B-parameter text encoder (written by
// `causvid embed-prompts`, data/embed_prompts_main.cpp). No reference counterpart: CausVid
// runs WanTextEncoder on the fly; the cached rows are exactly what it returns.
//
// Layout of the LMDB (a directory):
//   "__meta__"        JSON {format "causvid-prompt-cache", version 1, text_len, dim, dtype,
//                     count, encoder, tokenizer}; written in the last commit.
//   "emb_<32 hex>"    one prompt: key = 128-bit hash of the CLEANED prompt (Wan's
//                     whitespace/HTML cleaning, so "a  dog" and "a dog" share an entry);
//                     value = "CVPE" u32 version, u32 length, u32 dim, u32 dtype code,
//                     u32 prompt bytes, the cleaned prompt (checked on lookup), then the
//                     `length` valid rows [length, dim] little-endian. Rows past `length`
//                     are zero in WanTextEncoder's output and are not stored: encode() pads.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/lmdb.h"
#include "data/prompt_file.h"
#include "models/t5/text_conditioner.h"

namespace causvid::models {
class UMT5TextEncoder;
}

namespace causvid::data {

// "emb_" + 32 hex digits of a 128-bit hash of models::clean_prompt(prompt).
std::string prompt_cache_key(const std::string& prompt);

// "bf16" | "fp16" | "fp32" (also "bfloat16", "float16", "float32") -> dtype.
torch::ScalarType parse_embed_dtype(const std::string& flag, const std::string& v);

class PromptCacheWriter {
 public:
  // Creates or extends the cache at `dir`. An existing cache must have the same
  // text_len, dim and dtype.
  PromptCacheWriter(const std::string& dir, int64_t text_len, int64_t dim,
                    torch::ScalarType dtype, const std::string& encoder_desc,
                    const std::string& tokenizer_desc, size_t initial_map_size = 64ull << 20);
  // emb_NLC [N, text_len, dim] (any float dtype, any device); lengths[n] valid rows each.
  void add(const std::vector<std::string>& prompts, const torch::Tensor& emb_NLC,
           const std::vector<int64_t>& lengths);
  // Commits the entries and then the meta record.
  void finish();
  int64_t count() const { return count_; }
  const LmdbWriter& lmdb() const { return lmdb_; }

 private:
  LmdbWriter lmdb_;
  int64_t text_len_, dim_;
  torch::ScalarType dtype_;
  std::string encoder_desc_, tokenizer_desc_;
  int64_t count_ = 0;
  std::vector<std::string> keys_seen_;
};

class PromptCache : public models::TextConditioner {
 public:
  explicit PromptCache(const std::string& dir, torch::ScalarType output_dtype = torch::kFloat32);
  // [N, text_len, dim] on CPU; a prompt absent from the cache is an error naming it.
  torch::Tensor encode(const std::vector<std::string>& prompts) override;
  // The stored valid length of a prompt (0 if absent).
  int64_t length(const std::string& prompt) const;
  bool contains(const std::string& prompt) const;
  int64_t text_len() const override { return text_len_; }
  int64_t dim() const override { return dim_; }
  torch::ScalarType output_dtype() const override { return output_dtype_; }
  torch::ScalarType stored_dtype() const { return stored_dtype_; }
  int64_t size() const { return count_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  LmdbReader lmdb_;
  int64_t text_len_ = 0, dim_ = 0, count_ = 0;
  torch::ScalarType stored_dtype_ = torch::kBFloat16, output_dtype_;
};

// How a loader gets its text conditioning: a cache when cache_dir is set, else the encoder.
struct TextConditionerOptions {
  std::string cache_dir;       // --prompt-cache
  std::string encoder_path;    // umT5 weights
  std::string tokenizer_path;  // spiece.model or the google/umt5-xxl folder
  int64_t text_len = 512;
  int64_t text_dim = 0;  // the model's text_dim, for encoders of free width (hash); 0 = unset
  torch::ScalarType compute_dtype = torch::kFloat32;
  torch::ScalarType output_dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
};
// A prompt cache when cache_dir is set; else the encoder registered under encoder_path's
// name, if one is (see register_text_encoder); else umT5 weights at encoder_path.
std::unique_ptr<models::TextConditioner> make_text_conditioner(const TextConditionerOptions& o);

// Named text encoders that higher layers provide (the toy world's "toy", generate's
// "hash"): a config's text_encoder_path (or `generate --text-encoder`) equal to a registered
// name selects the factory instead of a weight file. Registration is explicit, from each
// layer's register_builtins() called at startup by the causvid main and the test main (no
// static self-registration: a static library drops objects nothing references).
using TextEncoderFactory =
    std::function<std::unique_ptr<models::TextConditioner>(const TextConditionerOptions&)>;
// Registering a name again replaces its factory.
void register_text_encoder(const std::string& name, TextEncoderFactory factory);
// nullptr when `name` is not registered.
const TextEncoderFactory* find_text_encoder(const std::string& name);
std::vector<std::string> text_encoder_names();

// Encodes `prompts` in batches and writes them to a new cache at out_dir, atomically (a
// temporary sibling directory renamed onto out_dir at the end). Duplicates (after cleaning)
// are encoded once. progress(done, total) is called after each batch.
void embed_prompts(models::UMT5TextEncoder& encoder, const std::vector<std::string>& prompts,
                   const std::string& out_dir, torch::ScalarType dtype, int64_t batch_size,
                   bool overwrite, const std::string& encoder_desc,
                   const std::function<void(int64_t, int64_t)>& progress = nullptr);

}  // namespace causvid::data
