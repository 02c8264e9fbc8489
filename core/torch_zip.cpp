// core/torch_zip.cpp: the zip side of CheckpointReader (core/torch_pickle.h). The archive is
// opened with caffe2::serialize::PyTorchStreamReader over our memory map (miniz validates the
// central directory); a stored record's bytes are then viewed in place (zero copy) from its
// offset, and compressed records (valid zip, never written by torch.save) are inflated by the
// reader. Every c10::Error of the reader is re-thrown naming the file.
#include "core/torch_pickle.h"

#include <caffe2/serialize/read_adapter_interface.h>

namespace causvid::core::detail {
namespace {

// Lets PyTorchStreamReader read from the map instead of opening the file a second time.
class MappedReadAdapter : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit MappedReadAdapter(std::shared_ptr<MappedFile> f) : f_(std::move(f)) {}
  size_t size() const override { return f_->size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* what) const override {
    if (pos >= f_->size()) return 0;
    n = std::min<uint64_t>(n, f_->size() - pos);
    std::memcpy(buf, f_->data() + pos, n);
    return n;
  }

 private:
  std::shared_ptr<MappedFile> f_;
};

}  // namespace

// A storage viewing bytes [offset, offset + nbytes) of the map; it keeps the map alive.
c10::Storage mapped_storage(const std::shared_ptr<MappedFile>& f, uint64_t offset,
                            uint64_t nbytes) {
  auto* ctx = new std::shared_ptr<MappedFile>(f);
  c10::DataPtr ptr(
      f->data() + offset, ctx, [](void* c) { delete static_cast<std::shared_ptr<MappedFile>*>(c); },
      c10::Device(c10::kCPU));
  return c10::Storage(c10::Storage::use_byte_size_t(), nbytes, std::move(ptr), nullptr, false);
}

CheckpointReader::CheckpointReader(const std::string& path, const TorchLoadOptions& opt)
    : path_(path), opt_(opt) {
  file_ = std::make_shared<MappedFile>(path);
  try {
    reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::make_shared<MappedReadAdapter>(file_));
    TORCH_CHECK(reader_->hasRecord("data.pkl"), path, ": zip archive has no data.pkl record ",
                "(a TorchScript module or not a torch.save file; want a torch.save checkpoint)");
    prefix_ = record_prefix();
    if (reader_->hasRecord("byteorder")) {
      auto rec = reader_->getRecord("byteorder");
      std::string order(static_cast<const char*>(std::get<0>(rec).get()), std::get<1>(rec));
      TORCH_CHECK(order == "little", path, ": byteorder '", order, "' not supported (want little)");
    }
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    if (msg.rfind(path, 0) == 0) throw;  // already names the file
    TORCH_CHECK(false, path, ": not a readable torch.save zip archive (truncated or corrupt?): ",
                msg);
  }
}

// The archive's top folder ("archive/", or the saved file's stem), read from data.pkl's local
// header, for messages only; empty when that header is unreadable (record_span reports it).
std::string CheckpointReader::record_prefix() {
  const uint64_t hdr = reader_->getRecordHeaderOffset("data.pkl");
  const uint8_t* d = file_->data();
  const uint64_t n = file_->size();
  if (hdr > n || n - hdr < 30 || rd32(d + hdr) != 0x04034b50) return "";
  const uint64_t name_len = rd16(d + hdr + 26);
  if (name_len > n - hdr - 30) return "";
  const std::string name(reinterpret_cast<const char*>(d + hdr + 30), name_len);
  const std::string kPkl = "data.pkl";
  if (name.size() < kPkl.size() || name.compare(name.size() - kPkl.size(), kPkl.size(), kPkl))
    return "";
  return name.substr(0, name.size() - kPkl.size());
}

// The central directory (checked by miniz when the reader opened the archive) gives the
// record's uncompressed size and local header; the local header gives method, flags and where
// the data starts, which PyTorchStreamReader does not expose.
CheckpointReader::RecordSpan CheckpointReader::record_span(const std::string& rel) {
  RecordSpan span;
  uint64_t hdr = 0;
  try {
    hdr = reader_->getRecordHeaderOffset(rel);
    span.size = reader_->getRecordSize(rel);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, path_, ": zip record ", prefix_, rel, ": ", e.what_without_backtrace());
  }
  const uint8_t* d = file_->data();
  const uint64_t n = file_->size();
  TORCH_CHECK(hdr <= n && n - hdr >= 30 && rd32(d + hdr) == 0x04034b50, path_, ": zip record ",
              prefix_, rel, " has a corrupt local header (truncated?)");
  const uint16_t flags = rd16(d + hdr + 6), method = rd16(d + hdr + 8);
  span.offset = hdr + 30 + rd16(d + hdr + 26) + rd16(d + hdr + 28);
  span.stored = method == 0 && (flags & 1) == 0;
  if (span.stored) {
    TORCH_CHECK(span.offset <= n && span.size <= n - span.offset, path_, ": zip record ", prefix_,
                rel, " (", span.size, " bytes at ", span.offset,
                ") extends past the end of the file (", n, " bytes; truncated?)");
  }
  return span;
}

c10::Storage CheckpointReader::read_storage(const std::string& key, uint64_t nbytes) {
  const std::string rel = "data/" + key;
  PKL_CHECK(reader_->hasRecord(rel), "record ", prefix_, rel,
            " (a tensor's storage) is missing from the archive");
  const RecordSpan span = record_span(rel);
  PKL_CHECK(span.size >= nbytes, "record ", prefix_, rel, " has ", span.size,
            " bytes, but its storage wants ", nbytes, " (truncated or corrupt archive)");
  if (span.stored) {
    if (opt_.mmap && (span.offset % 16) == 0) return mapped_storage(file_, span.offset, nbytes);
    c10::Storage s(c10::Storage::use_byte_size_t(), nbytes, c10::GetAllocator(c10::kCPU), false);
    if (nbytes) std::memcpy(s.mutable_data(), file_->data() + span.offset, nbytes);
    return s;
  }
  // Compressed record (not written by torch.save, but valid zip): inflate via the reader.
  at::DataPtr ptr;
  size_t got = 0;
  try {
    std::tie(ptr, got) = reader_->getRecord(rel);
  } catch (const c10::Error& e) {
    PKL_CHECK(false, "cannot read record ", prefix_, rel, ": ", e.what_without_backtrace());
  }
  PKL_CHECK(got >= nbytes, "record ", prefix_, rel, " has ", got, " bytes, want ", nbytes);
  return c10::Storage(c10::Storage::use_byte_size_t(), nbytes, std::move(ptr), nullptr, false);
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, ...) with every index checked.

}  // namespace causvid::core::detail
