// data/lmdb.h: a small RAII wrapper over LMDB (liblmdb), byte values by string key.
// Used by the prompt-embedding cache (data/prompt_cache.h) and, later, by the datasets that
// read CausVid's LMDBs (keys "<array>_<index>_data", "<array>_shape"; the reader opens them
// as CausVid does: lmdb.open(path, readonly=True, lock=False, readahead=False)).
//
//   LmdbWriter w(dir);  w.put("k", bytes);  w.commit();   // grows the map on MDB_MAP_FULL
//   LmdbReader r(dir);  auto v = r.get("k");               // std::optional<std::string>
//
// Every liblmdb return code goes through check_lmdb(), which names the path, the operation
// and adds a hint (llm.c's freadCheck idea). An environment is a directory (data.mdb,
// lock.mdb), the default of both liblmdb and py-lmdb.
#pragma once

#include <lmdb.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace causvid::data {

// Throws c10::Error "<path>: <what>: <mdb_strerror(rc)> (<hint>)" unless rc == MDB_SUCCESS.
void check_lmdb(int rc, const std::string& path, const std::string& what);

class LmdbEnv {
 public:
  enum class Mode { kReadOnly, kWrite };
  // kReadOnly: MDB_RDONLY | MDB_NOLOCK | MDB_NORDAHEAD; the directory must exist.
  // kWrite: creates the directory if needed; map_size is the initial map size in bytes.
  LmdbEnv(const std::string& path, Mode mode, size_t map_size = 64ull << 20);
  ~LmdbEnv();
  LmdbEnv(const LmdbEnv&) = delete;
  LmdbEnv& operator=(const LmdbEnv&) = delete;

  MDB_env* get() const { return env_; }
  const std::string& path() const { return path_; }
  Mode mode() const { return mode_; }
  size_t map_size() const;
  // Only with no transaction open in this process.
  void set_map_size(size_t bytes);
  size_t max_key_size() const;

 private:
  std::string path_;
  Mode mode_;
  MDB_env* env_ = nullptr;
};

// A transaction on the unnamed database; aborted at scope exit unless committed.
class LmdbTxn {
 public:
  LmdbTxn(const LmdbEnv& env, bool read_only);
  ~LmdbTxn();
  LmdbTxn(const LmdbTxn&) = delete;
  LmdbTxn& operator=(const LmdbTxn&) = delete;

  // The value bytes, valid until the transaction ends; nullopt if absent.
  std::optional<std::string_view> get(std::string_view key) const;
  // Returns the raw rc (MDB_SUCCESS or MDB_MAP_FULL; anything else throws).
  int put(std::string_view key, std::string_view value);
  // Visits every entry in key order; fn returns false to stop.
  void for_each(const std::function<bool(std::string_view, std::string_view)>& fn) const;
  void commit();
  // Commits; returns MDB_SUCCESS or MDB_MAP_FULL, throws on anything else.
  int try_commit();
  void abort();
  MDB_txn* get() const { return txn_; }

 private:
  const LmdbEnv& env_;
  MDB_txn* txn_ = nullptr;
  MDB_dbi dbi_ = 0;
};

class LmdbReader {
 public:
  explicit LmdbReader(const std::string& path);
  const std::string& path() const { return env_.path(); }
  std::optional<std::string> get(const std::string& key) const;
  bool contains(const std::string& key) const;
  std::vector<std::string> keys() const;  // sorted (LMDB order)
  void for_each(const std::function<bool(std::string_view, std::string_view)>& fn) const;
  int64_t size() const;

 private:
  LmdbEnv env_;
};

class LmdbWriter {
 public:
  // Opens or creates the environment at `path` (a directory).
  explicit LmdbWriter(const std::string& path, size_t initial_map_size = 64ull << 20);
  // Pending data not committed is dropped (with a warning); the DB keeps its last commit.
  ~LmdbWriter();
  LmdbWriter(const LmdbWriter&) = delete;
  LmdbWriter& operator=(const LmdbWriter&) = delete;

  // Buffers one entry (a later put of the same key wins); commits by itself once the
  // buffered bytes exceed 256 MiB.
  void put(const std::string& key, std::string value);
  // Writes the buffered entries in one transaction. On MDB_MAP_FULL the transaction is
  // aborted, the map doubled and the whole batch retried.
  void commit();
  // Reads committed data through this writer's environment (an environment must not be
  // opened twice in one process, so no LmdbReader on the same path meanwhile).
  std::optional<std::string> get(const std::string& key) const;
  void for_each(const std::function<bool(std::string_view, std::string_view)>& fn) const;
  const std::string& path() const { return env_.path(); }
  size_t map_size() const { return env_.map_size(); }
  int num_resizes() const { return num_resizes_; }
  size_t pending() const { return pending_.size(); }

 private:
  LmdbEnv env_;
  std::vector<std::pair<std::string, std::string>> pending_;
  size_t pending_bytes_ = 0;
  int num_resizes_ = 0;
};

}  // namespace causvid::data
