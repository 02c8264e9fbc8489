// models/t5/tokenizer.h: the umT5 tokenizer as Wan2.1 uses it.
// Ports wan/modules/tokenizers.py HuggingfaceTokenizer(name='google/umt5-xxl', seq_len=512,
// clean='whitespace'), i.e. basic_clean (ftfy.fix_text + html.unescape twice + strip) then
// whitespace_clean (\s+ -> ' ', strip), then T5TokenizerFast(add_special_tokens=True,
// padding='max_length', truncation=True): sentencepiece ids, truncated to seq_len - 1,
// EOS appended, padded with 0; mask 1 on the kept positions.
//
// Deliberate differences:
//  - The HF fast tokenizer is emulated with sentencepiece on the cleaned text (identical
//    for whitespace-cleaned text; see ../shared/fixtures/KINDS.vae_t5.md).
//  - ftfy.fix_text is reduced to what matters for prompts: fullwidth ASCII forms U+FF01..
//    U+FF5E and U+FFE0..U+FFE6 to their NFKC form, U+3000 to ' ', curly quotes to straight
//    ones. Other NFC/NFKC work is left to the model's own nmt_nfkc normalizer, which gives
//    the same ids. html.unescape knows numeric references and the common named entities
//    (not the whole HTML5 table).
//
// sentencepiece is reached through libcausvid_spm.so (models/t5/spm_shim.cc), dlopen()ed
// with RTLD_DEEPBIND: linking libsentencepiece into a LibTorch binary is unsafe (it defines
// symbols LibTorch defines with other types: protobuf with LibTorch 1.13, FLAGS_minloglevel
// with 2.11, see spm_shim.cc). The shim is found
// via $CAUSVID_SPM_SHIM, then next to the running executable, then at its build path.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace causvid::models {

struct SpmShim;  // the dlopen()ed function table (tokenizer.cpp)

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). On failure
// *bad_offset (if given) is the byte offset of the first bad sequence.
bool is_valid_utf8(const std::string& s, size_t* bad_offset = nullptr);

// Wan's prompt cleaning (basic_clean + whitespace_clean). Input must be valid UTF-8.
std::string clean_prompt(const std::string& text);

// Result of tokenizing a batch: ids and mask are int64 [N, seq_len].
struct TokenBatch {
  torch::Tensor ids, mask;
  std::vector<int64_t> lengths;  // valid positions per row (incl. EOS)
};

class UMT5Tokenizer {
 public:
  // `path` is a sentencepiece model file or a folder holding spiece.model (the
  // google/umt5-xxl tokenizer folder). Throws naming the path on any problem.
  UMT5Tokenizer(const std::string& path, int64_t seq_len = 512);
  // A byte-level stand-in for tiny test encoders (no model file): id = UTF-8 byte + 3,
  // pad 0, eos 1, unk 2, vocab 259. Cleaning, truncation, EOS and padding as above.
  static std::unique_ptr<UMT5Tokenizer> bytes(int64_t seq_len = 512);
  ~UMT5Tokenizer();
  UMT5Tokenizer(const UMT5Tokenizer&) = delete;
  UMT5Tokenizer& operator=(const UMT5Tokenizer&) = delete;

  // Raw sentencepiece ids of already cleaned text (no EOS, no truncation).
  std::vector<int64_t> encode_ids(const std::string& cleaned) const;
  std::string id_to_piece(int64_t id) const;
  // The full HuggingfaceTokenizer call: clean, encode, truncate, EOS, pad.
  TokenBatch operator()(const std::vector<std::string>& prompts) const;

  int64_t seq_len() const { return seq_len_; }
  int64_t vocab_size() const { return vocab_size_; }
  int64_t pad_id() const { return pad_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t unk_id() const { return unk_id_; }
  const std::string& model_path() const { return model_path_; }

 private:
  UMT5Tokenizer() = default;
  std::string model_path_;
  int64_t seq_len_ = 512;
  int64_t vocab_size_ = 0, pad_id_ = 0, eos_id_ = 1, unk_id_ = 2;
  // The HF tokenizer's added sentinels <extra_id_N> (tokenizer_config.json "extra_ids" beside
  // spiece.model, else special_tokens_map.json's count): id vocab + extra_ids - 1 - N.
  int64_t extra_ids_ = 0;
  std::vector<int64_t> encode_plain(const std::string& text) const;
  const SpmShim* shim_ = nullptr;
  void* handle_ = nullptr;
};

// Where the shim library is looked for (for error messages and tests).
std::vector<std::string> spm_shim_candidates();

}  // namespace causvid::models
