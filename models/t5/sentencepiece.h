// models/t5/sentencepiece.h: the sentencepiece model behind UMT5Tokenizer, behind a small
// interface of our own. sentencepiece_processor.h declares its own `absl::string_view`, which
// clashes with Debian's Abseil headers (core/log.h), so only sentencepiece.cpp includes it.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace causvid::models {

class SentencePieceModel {
 public:
  // Loads a sentencepiece .model file; throws c10::Error naming the file on failure.
  explicit SentencePieceModel(const std::string& path);
  ~SentencePieceModel();
  SentencePieceModel(const SentencePieceModel&) = delete;
  SentencePieceModel& operator=(const SentencePieceModel&) = delete;

  int piece_size() const;
  int pad_id() const;  // -1 when the model has none
  int eos_id() const;
  int unk_id() const;
  std::vector<int> encode(const std::string& text) const;  // throws on failure
  std::string id_to_piece(int id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

}  // namespace causvid::models
