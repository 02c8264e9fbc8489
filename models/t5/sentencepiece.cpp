// models/t5/sentencepiece.cpp: see sentencepiece.h. The only file that includes
// sentencepiece_processor.h (its absl::string_view clashes with Debian's Abseil).
#include "models/t5/sentencepiece.h"

#include <c10/util/Exception.h>
#include <sentencepiece_processor.h>

// Exported by libsentencepiece.so.0 (src/common.h), not declared in the public header.
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

namespace causvid::models {

struct SentencePieceModel::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SentencePieceModel::SentencePieceModel(const std::string& path)
    : impl_(std::make_unique<Impl>()), path_(path) {
  // No LOG() output from sentencepiece; errors come back as util::Status.
  sentencepiece::logging::SetMinLogLevel(100);
  const auto st = impl_->sp.Load(path);
  TORCH_CHECK(st.ok(), path, ": not a sentencepiece model: ", st.ToString());
}

SentencePieceModel::~SentencePieceModel() = default;

int SentencePieceModel::piece_size() const { return impl_->sp.GetPieceSize(); }
int SentencePieceModel::pad_id() const { return impl_->sp.pad_id(); }
int SentencePieceModel::eos_id() const { return impl_->sp.eos_id(); }
int SentencePieceModel::unk_id() const { return impl_->sp.unk_id(); }

std::vector<int> SentencePieceModel::encode(const std::string& text) const {
  std::vector<int> out;
  const auto st = impl_->sp.Encode(text, &out);
  TORCH_CHECK(st.ok(), path_, ": sentencepiece encode failed: ", st.ToString());
  return out;
}

std::string SentencePieceModel::id_to_piece(int id) const { return impl_->sp.IdToPiece(id); }

}  // namespace causvid::models
