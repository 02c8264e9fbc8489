// core/fs.h: small filesystem helpers. AtomicFile writes to "<path>.tmp.<pid>" and renames
// onto <path> in commit(), so a crash or an error never leaves a half-written file under
// the final name. The destructor removes the temporary file if commit() was not reached.
#pragma once

#include <cstdio>
#include <string>

namespace causvid::core {

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  // fsyncs, closes and renames onto the final path. Throws on any failure.
  void commit();
  const std::string& tmp_path() const { return tmp_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

// Writes a whole file atomically.
void write_file_atomic(const std::string& path, const std::string& content);
std::string read_file(const std::string& path);
bool file_exists(const std::string& path);
// mkdir -p; throws naming the path on failure.
void make_dirs(const std::string& path);

}  // namespace causvid::core
