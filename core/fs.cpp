// core/fs.cpp: see fs.h.
#include "core/fs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <c10/util/Exception.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace causvid::core {

AtomicFile::AtomicFile(const std::string& path)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
  f_ = std::fopen(tmp_.c_str(), "wb");
  TORCH_CHECK(f_ != nullptr, path, ": cannot open for writing (", tmp_, "): ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (f_) std::fclose(f_);
  if (!committed_) std::remove(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  TORCH_CHECK(f_ != nullptr && !committed_, path_, ": write after commit");
  if (n == 0) return;
  size_t w = std::fwrite(data, 1, n, f_);
  TORCH_CHECK(w == n, path_, ": write failed after ", w, " of ", n, " bytes: ",
              std::strerror(errno), " (disk full?)");
}

void AtomicFile::commit() {
  TORCH_CHECK(f_ != nullptr && !committed_, path_, ": commit twice");
  bool ok = std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
  int err = errno;
  ok = (std::fclose(f_) == 0) && ok;
  f_ = nullptr;
  TORCH_CHECK(ok, path_, ": flush/close failed: ", std::strerror(err), " (disk full?)");
  TORCH_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0, path_, ": rename from ", tmp_,
              " failed: ", std::strerror(errno));
  committed_ = true;
}

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicFile f(path);
  f.write(content);
  f.commit();
}

std::string read_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    TORCH_CHECK(!S_ISDIR(st.st_mode), path, ": is a directory, want a file");
  } else if (errno == ELOOP) {
    TORCH_CHECK(false, path, ": symbolic link loop");
  }
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.good(), path, ": cannot open for reading: ", std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  TORCH_CHECK(!ec, path, ": cannot create directory: ", ec.message());
}

}  // namespace causvid::core
