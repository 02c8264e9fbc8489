// tests/test_util.h: helpers shared by the test files.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace causvid::testing {

inline std::string shared_dir() {
  if (const char* v = std::getenv("CAUSVID_SHARED_DIR")) return v;
  return CAUSVID_SHARED_DIR;
}
inline std::string causvid_binary() { return CAUSVID_BINARY; }
inline std::string source_dir() { return CAUSVID_SOURCE_DIR; }

// A fresh temporary directory removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "causvid_test_XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs a shell command, returns its exit code; stdout+stderr captured into *out if given.
inline int run_command(const std::string& cmd, std::string* out = nullptr) {
  std::string full = cmd + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  std::string acc;
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) acc.append(buf, n);
  int status = ::pclose(p);
  if (out) *out = acc;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Expects that `fn` throws a c10::Error / std::exception whose message contains every needle.
template <typename Fn>
void expect_error_contains(Fn&& fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing '" << *needles.begin() << "'";
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    for (const auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "message '" << msg << "' lacks '" << n << "'";
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (const auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "message '" << msg << "' lacks '" << n << "'";
  }
}

}  // namespace causvid::testing
