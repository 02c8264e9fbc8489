// models/t5/spm_shim.cc: a tiny C ABI over sentencepiece::SentencePieceProcessor, built as
// its own shared library (libcausvid_spm.so) that links libsentencepiece.
//
// Why: libsentencepiece defines symbols that LibTorch also defines with other types. With
// Debian's LibTorch 1.13 its protobuf-lite symbols were interposed by libprotobuf.so.32 (crash
// at static initialisation); with the PyPI LibTorch 2.11 its FLAGS_minloglevel binds to
// libc10's 4-byte flag and its 8-byte write sets libc10's FLAGS_caffe2_use_fatal_for_enforce,
// so every CAFFE_ENFORCE aborts. models/t5/tokenizer.cpp therefore dlopen()s this
// shim with RTLD_LOCAL | RTLD_DEEPBIND, so the shim and libsentencepiece bind to their own
// definitions first. Nothing else may link this library.
//
// The file is named *.cc on purpose: the layer libraries' globs only pick up *.cpp.
// No iostreams here, and sentencepiece's own logging is switched off: under RTLD_DEEPBIND
// libsentencepiece's `std::cerr` binds to libstdc++'s own copy of the object, which is never
// constructed when the executable holds a copy relocation of std::cerr (causvid_tests does),
// so any LOG() from sentencepiece would segfault (checked with a two-file experiment).
#include <sentencepiece_processor.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

// Exported by libsentencepiece.so.0 (src/common.h), not declared in the public header.
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}  // namespace sentencepiece::logging

namespace {

void set_err(char* err, int errlen, const std::string& msg) {
  if (!err || errlen <= 0) return;
  std::size_t n = std::min<std::size_t>(msg.size(), static_cast<std::size_t>(errlen - 1));
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

}  // namespace

extern "C" {

// Returns an opaque handle, or null with a message in err.
__attribute__((visibility("default"))) void* cv_spm_load(const char* path, char* err,
                                                         int errlen) {
  try {
    // Above LOG_FATAL (3): no LOG() output at all; errors come back as util::Status.
    sentencepiece::logging::SetMinLogLevel(100);
    auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
    auto st = sp->Load(path);
    if (!st.ok()) {
      set_err(err, errlen, st.ToString());
      return nullptr;
    }
    return sp.release();
  } catch (const std::exception& e) {
    set_err(err, errlen, e.what());
  } catch (...) {
    set_err(err, errlen, "unknown exception in sentencepiece");
  }
  return nullptr;
}

__attribute__((visibility("default"))) void cv_spm_free(void* h) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(h);
}

__attribute__((visibility("default"))) int cv_spm_piece_size(void* h) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(h)->GetPieceSize();
}

// which: 0 pad, 1 eos, 2 unk, 3 bos (-1 when the model has none).
__attribute__((visibility("default"))) int cv_spm_special_id(void* h, int which) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
  switch (which) {
    case 0: return sp->pad_id();
    case 1: return sp->eos_id();
    case 2: return sp->unk_id();
    case 3: return sp->bos_id();
    default: return -1;
  }
}

// Encodes `len` bytes of UTF-8. Returns the number of ids (writing at most `cap` of them;
// call again with a larger buffer if the result exceeds cap), or -1 with err set.
__attribute__((visibility("default"))) int cv_spm_encode(void* h, const char* text, int len,
                                                         int* ids, int cap, char* err,
                                                         int errlen) {
  try {
    auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
    std::vector<int> out;
    auto st = sp->Encode(std::string(text, static_cast<std::size_t>(len)), &out);
    if (!st.ok()) {
      set_err(err, errlen, st.ToString());
      return -1;
    }
    for (std::size_t i = 0; i < out.size() && static_cast<int>(i) < cap; ++i) ids[i] = out[i];
    return static_cast<int>(out.size());
  } catch (const std::exception& e) {
    set_err(err, errlen, e.what());
  } catch (...) {
    set_err(err, errlen, "unknown exception in sentencepiece");
  }
  return -1;
}

// Copies the piece of `id` into buf (NUL-terminated, truncated to cap-1); returns its length.
__attribute__((visibility("default"))) int cv_spm_id_to_piece(void* h, int id, char* buf,
                                                              int cap) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
  if (id < 0 || id >= sp->GetPieceSize()) return -1;
  const std::string& p = sp->IdToPiece(id);
  set_err(buf, cap, p);
  return static_cast<int>(p.size());
}

}  // extern "C"
