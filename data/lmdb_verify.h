// data/lmdb_verify.h: LMDB files are not trusted. LMDB does not checksum its pages, so a
// corrupt or truncated data.mdb can make liblmdb itself read out of bounds (SIGBUS, SIGSEGV),
// abort on an internal assertion (SIGABRT) or loop forever inside mdb_cursor_get. This file
// checks a CausVid array LMDB (data/array_lmdb.h layout) before the process opens it:
//
//   1. check_lmdb_file(dir): cheap, no liblmdb call and no mmap: DIR/data.mdb is a regular
//      file, its size a multiple of the page size and at least 2 pages, both meta pages
//      carry LMDB's magic 0xBEEFC0DE, data version 1 and the meta flag, and the newer meta's
//      last page and root pages lie inside the file (a truncated file is caught here).
//   2. verify_array_lmdb(dir, timeout_s): check 1, then a forked child walks every entry
//      with liblmdb (keys strictly increasing, entry count = mdb_stat's, every key and value
//      inside the mapped file) and checks the array layout (each "<array>_shape" parses, its
//      row bytes do not overflow, every row "<array>_<i>_data" for i < N exists and a tensor
//      row holds prod(shape[1:]) float16 bytes). The child's death by a signal, or no answer
//      within timeout_s (it is then killed), is a rejection, never the caller's crash.
//
// Not a CRC: corruption that keeps the structure intact (flipped bits inside a float16 row
// or a prompt) is accepted and yields wrong values. The file may also change between the
// check and the reads (use the check on files that are not being written).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace causvid::data {

// Default deadline of the walk child: generous, the walk reads no value bytes.
constexpr double kDefaultVerifyTimeoutS = 300.0;

struct VerifyResult {
  enum class Status {
    kSound,     // every check passed
    kRejected,  // a check failed (error says which, naming the file and the key)
    kCrashed,   // the walking child died by a signal or exited without an answer
    kTimedOut,  // the walking child did not finish within the deadline
  };
  Status status = Status::kRejected;
  std::string error;    // "DIR/data.mdb: ..." unless sound
  std::string summary;  // one line per array when sound
  int64_t num_entries = 0;
  double seconds = 0;  // wall time of the whole verification
  bool ok() const { return status == Status::kSound; }
};

// The cheap structural checks (1. above). Returns "" when they pass, else the error naming
// DIR/data.mdb.
std::string check_lmdb_file(const std::string& dir);

// Both checks (2. above). Never throws for a bad file; never signals or hangs the caller.
VerifyResult verify_array_lmdb(const std::string& dir, double timeout_s = kDefaultVerifyTimeoutS);

// verify_array_lmdb, throwing c10::Error with its error unless the LMDB is sound. Every
// reader of an array LMDB (training datasets, lmdb info, toy preview) calls this first.
void check_array_lmdb(const std::string& dir, double timeout_s = kDefaultVerifyTimeoutS);

// Runs fn in a forked child (core dumps off, stderr kept for the error) with a deadline.
// fn returns its answer, which must start with 'S' (success) or 'E' (error). Used by the
// verification and by tests that read untrusted data in a child.
struct GuardedRun {
  enum class Outcome { kAnswered, kCrashed, kTimedOut } outcome = Outcome::kCrashed;
  std::string answer;       // what fn returned (kAnswered)
  std::string what;         // "the reader died with SIGBUS", "did not finish in 5 s", ...
  std::string stderr_tail;  // the child's last stderr bytes (e.g. liblmdb's assertion)
};
GuardedRun run_guarded(const std::function<std::string()>& fn, double timeout_s);

}  // namespace causvid::data
