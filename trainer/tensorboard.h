// trainer/tensorboard.h: TensorBoard event files without TensorFlow, so that
// `tensorboard --logdir OUTPUT` shows a C++ run as it shows the Python trainers': scalars per
// step and images (the sample sheets). The file is TensorFlow's record format: for each
// record, u64 length, u32 masked CRC-32C of the length, the bytes, u32 masked CRC-32C of the
// bytes; each record an `Event` protobuf (wall_time = 1, step = 2, file_version = 3,
// summary = 5 { value = 1 { tag = 1, simple_value = 2, image = 4 { height = 1, width = 2,
// colorspace = 3, encoded_image_string = 4 } } }), encoded here by hand.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace causvid::trainer {

// TensorFlow's mask of the CRC-32C (core/checksum.h) of a record.
uint32_t masked_crc32c(const void* data, size_t n);

class EventWriter {
 public:
  // Writes <dir>/events.out.tfevents.<seconds>.<host>.<pid> (dir created if needed) and its
  // first event (file_version "brain.Event:2").
  explicit EventWriter(const std::string& dir);
  const std::string& path() const { return path_; }
  void scalar(const std::string& tag, int64_t step, double value);
  // An encoded PNG of height x width with `channels` (3 = RGB).
  void image(const std::string& tag, int64_t step, const std::string& png, int height, int width,
             int channels = 3);
  void flush();

 private:
  void write_event(int64_t step, const std::string& summary);
  void write_record(const std::string& event_bytes);
  std::string path_;
  std::ofstream out_;
};

// Reads the records of an event file back (CRCs checked; throws naming the file on a bad one):
// the raw Event bytes of each. For tests and `causvid inspect`.
std::vector<std::string> read_event_records(const std::string& path);

}  // namespace causvid::trainer
