// trainer/tensorboard.cpp: see tensorboard.h.
#include "trainer/tensorboard.h"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "core/checksum.h"
#include "core/fs.h"

namespace causvid::trainer {
namespace {

// ---- protobuf wire format (varint = 0, 64-bit = 1, length-delimited = 2, 32-bit = 5)
void varint(std::string& o, uint64_t v) {
  while (v >= 0x80) {
    o.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  o.push_back(static_cast<char>(v));
}
void key(std::string& o, int field, int wire) { varint(o, (uint64_t(field) << 3) | wire); }
void bytes_field(std::string& o, int field, const std::string& b) {
  key(o, field, 2);
  varint(o, b.size());
  o += b;
}
void double_field(std::string& o, int field, double v) {
  key(o, field, 1);
  char buf[8];
  std::memcpy(buf, &v, 8);
  o.append(buf, 8);
}
void float_field(std::string& o, int field, float v) {
  key(o, field, 5);
  char buf[4];
  std::memcpy(buf, &v, 4);
  o.append(buf, 4);
}
void int_field(std::string& o, int field, int64_t v) {
  key(o, field, 0);
  varint(o, static_cast<uint64_t>(v));
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void put_u64(std::string& o, uint64_t v) { o.append(reinterpret_cast<const char*>(&v), 8); }
void put_u32(std::string& o, uint32_t v) { o.append(reinterpret_cast<const char*>(&v), 4); }

}  // namespace

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = core::crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

EventWriter::EventWriter(const std::string& dir) {
  core::make_dirs(dir);
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  path_ = dir + "/events.out.tfevents." +
          std::to_string(static_cast<int64_t>(now_seconds())) + "." + host + "." +
          std::to_string(::getpid());
  out_.open(path_, std::ios::binary | std::ios::app);
  TORCH_CHECK(out_.good(), path_, ": cannot open for writing");
  std::string ev;
  double_field(ev, 1, now_seconds());
  bytes_field(ev, 3, "brain.Event:2");
  write_record(ev);
  out_.flush();
}

void EventWriter::write_record(const std::string& ev) {
  std::string rec;
  put_u64(rec, ev.size());
  put_u32(rec, masked_crc32c(rec.data(), 8));
  rec += ev;
  put_u32(rec, masked_crc32c(ev.data(), ev.size()));
  out_.write(rec.data(), static_cast<std::streamsize>(rec.size()));
  TORCH_CHECK(out_.good(), path_, ": write failed");
}

void EventWriter::write_event(int64_t step, const std::string& summary) {
  std::string ev;
  double_field(ev, 1, now_seconds());
  int_field(ev, 2, step);
  bytes_field(ev, 5, summary);
  write_record(ev);
}

void EventWriter::scalar(const std::string& tag, int64_t step, double value) {
  std::string v;
  bytes_field(v, 1, tag);
  float_field(v, 2, static_cast<float>(value));
  std::string summary;
  bytes_field(summary, 1, v);
  write_event(step, summary);
}

void EventWriter::image(const std::string& tag, int64_t step, const std::string& png, int height,
                        int width, int channels) {
  std::string img;
  int_field(img, 1, height);
  int_field(img, 2, width);
  int_field(img, 3, channels);
  bytes_field(img, 4, png);
  std::string v;
  bytes_field(v, 1, tag);
  bytes_field(v, 4, img);
  std::string summary;
  bytes_field(summary, 1, v);
  write_event(step, summary);
  flush();
}

void EventWriter::flush() { out_.flush(); }

std::vector<std::string> read_event_records(const std::string& path) {
  const std::string all = core::read_file(path);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < all.size()) {
    TORCH_CHECK(all.size() - pos >= 12, path, ": truncated record header at byte ", pos);
    uint64_t len;
    uint32_t lcrc;
    std::memcpy(&len, all.data() + pos, 8);
    std::memcpy(&lcrc, all.data() + pos + 8, 4);
    TORCH_CHECK(lcrc == masked_crc32c(all.data() + pos, 8), path, ": bad length CRC at byte ",
                pos);
    TORCH_CHECK(len <= all.size() - pos - 12 && all.size() - pos - 12 - len >= 4, path,
                ": truncated record at byte ", pos);
    const std::string data = all.substr(pos + 12, len);
    uint32_t dcrc;
    std::memcpy(&dcrc, all.data() + pos + 12 + len, 4);
    TORCH_CHECK(dcrc == masked_crc32c(data.data(), data.size()), path,
                ": bad data CRC at byte ", pos);
    out.push_back(data);
    pos += 12 + len + 4;
  }
  return out;
}

}  // namespace causvid::trainer
