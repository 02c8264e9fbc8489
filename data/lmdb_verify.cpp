// data/lmdb_verify.cpp: see lmdb_verify.h. The meta-page offsets are liblmdb 0.9's
// (mdb.c: MDB_page header of 16 bytes, then MDB_meta; 64-bit pgno_t and size_t; checked
// against the system liblmdb 0.9.24 on a little-endian host).
#include "data/lmdb_verify.h"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <lmdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace causvid::data {
namespace {

constexpr uint32_t kMdbMagic = 0xBEEFC0DE;
constexpr uint32_t kMdbDataVersion = 1;
constexpr uint16_t kPageMeta = 0x08;      // P_META
constexpr uint64_t kInvalidPage = ~0ull;  // P_INVALID: an empty tree
constexpr size_t kMetaBytes = 152;        // page header (16) + MDB_meta (136)

template <typename T>
T load(const unsigned char* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof(T));
  return v;
}

struct Meta {
  uint16_t flags;
  uint32_t magic, version, psize;
  uint16_t depth[2];
  uint64_t root[2], last_pg, txnid;
};

Meta parse_meta(const unsigned char* p) {
  Meta m{};
  m.flags = load<uint16_t>(p, 10);
  m.magic = load<uint32_t>(p, 16);
  m.version = load<uint32_t>(p, 20);
  m.psize = load<uint32_t>(p, 40);  // mm_dbs[FREE_DBI].md_pad
  m.depth[0] = load<uint16_t>(p, 46);
  m.root[0] = load<uint64_t>(p, 80);
  m.depth[1] = load<uint16_t>(p, 94);
  m.root[1] = load<uint64_t>(p, 128);
  m.last_pg = load<uint64_t>(p, 136);
  m.txnid = load<uint64_t>(p, 144);
  return m;
}

std::string check_meta(const std::string& file, int i, const Meta& m) {
  std::ostringstream e;
  e << file << ": corrupt LMDB file (meta page " << i << ": ";
  if (m.magic != kMdbMagic) {
    e << "magic 0x" << std::hex << m.magic << ", want 0x" << kMdbMagic << "; not an LMDB file)";
    return e.str();
  }
  if (m.version != kMdbDataVersion) {
    e << "data version " << m.version << ", want " << kMdbDataVersion << ")";
    return e.str();
  }
  if (!(m.flags & kPageMeta)) {
    e << "page flags 0x" << std::hex << m.flags << " lack the meta flag)";
    return e.str();
  }
  return "";
}

// The newer meta (the one liblmdb reads) against the file's page count.
std::string check_pages(const std::string& file, const Meta& m, uint64_t num_pages) {
  std::ostringstream e;
  if (m.last_pg + 1 > num_pages || m.last_pg < 1) {
    e << file << ": corrupt or truncated LMDB file (it holds " << num_pages
      << " pages, its meta page says the database uses " << m.last_pg + 1 << ")";
    return e.str();
  }
  for (int d = 0; d < 2; ++d) {
    const bool empty = m.root[d] == kInvalidPage;
    if (!empty && (m.root[d] < 2 || m.root[d] > m.last_pg)) {
      e << file << ": corrupt LMDB file (root page " << m.root[d] << " of database " << d
        << " outside pages 2.." << m.last_pg << ")";
      return e.str();
    }
    if (m.depth[d] > 32) {  // liblmdb's CURSOR_STACK
      e << file << ": corrupt LMDB file (tree depth " << m.depth[d] << " of database " << d
        << ", at most 32)";
      return e.str();
    }
  }
  return "";
}

std::string data_file(const std::string& dir) { return dir + "/data.mdb"; }

}  // namespace

std::string check_lmdb_file(const std::string& dir) {
  const std::string file = data_file(dir);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return dir + ": LMDB not found (want a directory holding data.mdb)";
  if (::stat(file.c_str(), &st) != 0)
    return file + ": not found (no LMDB environment there: want a directory holding data.mdb)";
  if (!S_ISREG(st.st_mode)) return file + ": not a regular file";
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return file + ": cannot open: " + std::strerror(errno);
  unsigned char page0[kMetaBytes], page1[kMetaBytes];
  const bool got0 = ::pread(fd, page0, kMetaBytes, 0) == static_cast<ssize_t>(kMetaBytes);
  const Meta m0 = got0 ? parse_meta(page0) : Meta{};
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  std::ostringstream e;
  if (!got0) {
    ::close(fd);
    e << file << ": corrupt LMDB file (" << size << " bytes, too short for a meta page)";
    return e.str();
  }
  std::string err = check_meta(file, 0, m0);
  const uint32_t ps = m0.psize;
  if (err.empty() && (ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0)) {
    e << file << ": corrupt LMDB file (page size " << ps << " in meta page 0)";
    err = e.str();
  } else if (err.empty() && (size % ps != 0 || size < 2ull * ps)) {
    e << file << ": corrupt or truncated LMDB file (" << size << " bytes: want a multiple of "
      << "the page size " << ps << ", at least 2 pages)";
    err = e.str();
  }
  const bool got1 =
      err.empty() && ::pread(fd, page1, kMetaBytes, ps) == static_cast<ssize_t>(kMetaBytes);
  ::close(fd);
  if (!err.empty()) return err;
  if (!got1) return file + ": cannot read meta page 1";
  const Meta m1 = parse_meta(page1);
  err = check_meta(file, 1, m1);
  if (!err.empty()) return err;
  // liblmdb reads the meta with the larger txnid (mdb_env_pick_meta).
  return check_pages(file, m1.txnid > m0.txnid ? m1 : m0, size / ps);
}

// ------------------------------------------------------------------ guarded child
namespace {

std::string signal_name(int sig) {
  switch (sig) {
    case SIGBUS:
      return "SIGBUS";
    case SIGSEGV:
      return "SIGSEGV";
    case SIGABRT:
      return "SIGABRT";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGKILL:
      return "SIGKILL";
    case SIGALRM:
      return "SIGALRM";
    default:
      return "signal " + std::to_string(sig);
  }
}

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

[[noreturn]] void child_main(const std::function<std::string()>& fn, int out_fd, int err_fd) {
  const struct rlimit no_core = {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);  // a crash on a corrupt file leaves no core file
  for (int sig : {SIGBUS, SIGSEGV, SIGABRT, SIGFPE, SIGILL}) ::signal(sig, SIG_DFL);
  ::dup2(err_fd, STDERR_FILENO);
  std::string answer;
  try {
    answer = fn();
  } catch (const std::exception& e) {
    answer = std::string("E") + e.what();
  } catch (...) {
    answer = "Eunknown exception";
  }
  write_all(out_fd, answer);
  ::_exit(0);  // no atexit handlers or static destructors of the parent's state
}

// Reads both pipes until EOF on the answer pipe or the deadline. False on the deadline.
bool drain(int out_fd, int err_fd, double timeout_s, std::string* answer, std::string* err) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  struct pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  char buf[4096];
  while (fds[0].fd >= 0) {
    const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    int rc = ::poll(fds, 2, static_cast<int>(std::min(left, 1.0) * 1000) + 1);
    if (rc < 0 && errno != EINTR) return true;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? answer : err)->append(buf, static_cast<size_t>(n));
        if (err->size() > 8192) err->erase(0, err->size() - 4096);
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
      }
    }
  }
  return true;
}

}  // namespace

GuardedRun run_guarded(const std::function<std::string()>& fn, double timeout_s) {
  GuardedRun r;
  int out_p[2], err_p[2];
  TORCH_CHECK(::pipe2(out_p, O_CLOEXEC) == 0, "pipe: ", std::strerror(errno));
  if (::pipe2(err_p, O_CLOEXEC) != 0) {
    ::close(out_p[0]);
    ::close(out_p[1]);
    TORCH_CHECK(false, "pipe: ", std::strerror(errno));
  }
  std::fflush(nullptr);  // no buffered output written twice
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(out_p[0]);
    ::close(err_p[0]);
    child_main(fn, out_p[1], err_p[1]);
  }
  ::close(out_p[1]);
  ::close(err_p[1]);
  if (pid < 0) {
    ::close(out_p[0]);
    ::close(err_p[0]);
    TORCH_CHECK(false, "fork: ", std::strerror(errno));
  }
  const bool finished = drain(out_p[0], err_p[0], timeout_s, &r.answer, &r.stderr_tail);
  if (!finished) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::close(out_p[0]);
  ::close(err_p[0]);
  if (r.stderr_tail.size() > 600) r.stderr_tail.erase(0, r.stderr_tail.size() - 600);
  std::ostringstream what;
  if (!finished) {
    r.outcome = GuardedRun::Outcome::kTimedOut;
    what << "did not finish in " << timeout_s << " s";
  } else if (WIFSIGNALED(status)) {
    r.outcome = GuardedRun::Outcome::kCrashed;
    what << "the reader died with " << signal_name(WTERMSIG(status));
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || r.answer.empty() ||
             (r.answer[0] != 'S' && r.answer[0] != 'E')) {
    r.outcome = GuardedRun::Outcome::kCrashed;
    what << "the reader exited with status " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1)
         << " without an answer";
  } else {
    r.outcome = GuardedRun::Outcome::kAnswered;
  }
  r.what = what.str();
  return r;
}

// ------------------------------------------------------------------ verify
// data/array_lmdb_walk.cpp: the child's walk, "S<entries>\n<summary>" or "E<error>".
std::string walk_array_lmdb(const std::string& dir, uint64_t file_size);

VerifyResult verify_array_lmdb(const std::string& dir, double timeout_s) {
  const auto t0 = std::chrono::steady_clock::now();
  VerifyResult v;
  auto finish = [&](VerifyResult::Status status) {
    v.status = status;
    v.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return v;
  };
  v.error = check_lmdb_file(dir);
  if (!v.error.empty()) return finish(VerifyResult::Status::kRejected);
  const std::string file = data_file(dir);
  struct stat st {};
  ::stat(file.c_str(), &st);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  GuardedRun r = run_guarded([&] { return walk_array_lmdb(dir, size); }, timeout_s);
  if (r.outcome != GuardedRun::Outcome::kAnswered) {
    v.error = file + ": corrupt LMDB file (" + r.what + " while walking it)";
    std::string tail = r.stderr_tail;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
    if (!tail.empty()) v.error += "; its last message: " + tail.substr(tail.rfind('\n') + 1);
    return finish(r.outcome == GuardedRun::Outcome::kTimedOut ? VerifyResult::Status::kTimedOut
                                                              : VerifyResult::Status::kCrashed);
  }
  if (r.answer[0] == 'E') {
    v.error = r.answer.substr(1);
    return finish(VerifyResult::Status::kRejected);
  }
  const size_t nl = r.answer.find('\n');
  v.num_entries = std::stoll(r.answer.substr(1, nl - 1));
  v.summary = r.answer.substr(nl + 1);
  return finish(VerifyResult::Status::kSound);
}

void check_array_lmdb(const std::string& dir, double timeout_s) {
  VerifyResult v = verify_array_lmdb(dir, timeout_s);
  TORCH_CHECK(v.ok(), v.error);
}

}  // namespace causvid::data
