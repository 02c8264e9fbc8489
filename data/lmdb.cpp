// data/lmdb.cpp: see lmdb.h.
#include "data/lmdb.h"

#include <c10/util/Exception.h>
#include <sys/stat.h>

#include <cerrno>

#include "core/fs.h"
#include "core/log.h"
#include "data/lmdb_verify.h"

namespace causvid::data {

namespace {

const char* hint_for(int rc) {
  switch (rc) {
    case ENOENT: return "no LMDB environment there (a directory holding data.mdb)";
    case EACCES: return "permission denied";
    case ENOTDIR: return "want a directory holding data.mdb";
    case MDB_MAP_FULL: return "map full; the writer grows the map, raise the initial size";
    case MDB_INVALID: return "not an LMDB file, or a different LMDB format version";
    case MDB_VERSION_MISMATCH: return "written by an incompatible liblmdb";
    case MDB_CORRUPTED: return "database corrupted";
    case MDB_BAD_VALSIZE: return "key too long (LMDB keys are at most 511 bytes) or empty";
    case MDB_READERS_FULL: return "too many readers";
    case MDB_MAP_RESIZED: return "another process grew the map; reopen";
    default: return "see mdb_strerror";
  }
}

MDB_val to_val(std::string_view s) {
  MDB_val v;
  v.mv_size = s.size();
  v.mv_data = const_cast<char*>(s.data());
  return v;
}

std::string_view from_val(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

}  // namespace

void check_lmdb(int rc, const std::string& path, const std::string& what) {
  if (rc == MDB_SUCCESS) return;
  TORCH_CHECK(false, path, ": ", what, ": ", mdb_strerror(rc), " (", hint_for(rc), ")");
}

// ------------------------------------------------------------------ env
LmdbEnv::LmdbEnv(const std::string& path, Mode mode, size_t map_size) : path_(path), mode_(mode) {
  struct stat st {};
  if (mode == Mode::kReadOnly) {
    TORCH_CHECK(::stat(path.c_str(), &st) == 0, path, ": LMDB not found (want a directory ",
                "holding data.mdb)");
    TORCH_CHECK(S_ISDIR(st.st_mode), path, ": not a directory (want an LMDB environment dir)");
    // The cheap meta-page checks (no mmap): a truncated or foreign data.mdb is an error here,
    // not a SIGBUS in liblmdb. The full walk is check_array_lmdb (data/lmdb_verify.h).
    if (::stat((path + "/data.mdb").c_str(), &st) == 0) {
      const std::string err = check_lmdb_file(path);
      TORCH_CHECK(err.empty(), err);
    }
  } else {
    core::make_dirs(path);
  }
  check_lmdb(mdb_env_create(&env_), path, "mdb_env_create");
  unsigned flags = mode == Mode::kReadOnly ? (MDB_RDONLY | MDB_NOLOCK | MDB_NORDAHEAD) : 0;
  int rc = MDB_SUCCESS;
  if (mode == Mode::kWrite) rc = mdb_env_set_mapsize(env_, map_size);
  if (rc == MDB_SUCCESS) rc = mdb_env_open(env_, path.c_str(), flags, 0664);
  if (rc != MDB_SUCCESS) {
    mdb_env_close(env_);
    env_ = nullptr;
    check_lmdb(rc, path, mode == Mode::kReadOnly ? "open read-only" : "open for writing");
  }
}

LmdbEnv::~LmdbEnv() {
  if (env_) mdb_env_close(env_);
}

size_t LmdbEnv::map_size() const {
  MDB_envinfo info;
  check_lmdb(mdb_env_info(env_, &info), path_, "mdb_env_info");
  return info.me_mapsize;
}

void LmdbEnv::set_map_size(size_t bytes) {
  check_lmdb(mdb_env_set_mapsize(env_, bytes), path_, "mdb_env_set_mapsize");
}

size_t LmdbEnv::max_key_size() const { return static_cast<size_t>(mdb_env_get_maxkeysize(env_)); }

// ------------------------------------------------------------------ txn
LmdbTxn::LmdbTxn(const LmdbEnv& env, bool read_only) : env_(env) {
  check_lmdb(mdb_txn_begin(env.get(), nullptr, read_only ? MDB_RDONLY : 0, &txn_), env.path(),
             "begin transaction");
  int rc = mdb_dbi_open(txn_, nullptr, 0, &dbi_);
  if (rc != MDB_SUCCESS) {
    mdb_txn_abort(txn_);
    txn_ = nullptr;
    check_lmdb(rc, env.path(), "open database");
  }
}

LmdbTxn::~LmdbTxn() { abort(); }

std::optional<std::string_view> LmdbTxn::get(std::string_view key) const {
  TORCH_CHECK(txn_, env_.path(), ": get on a finished transaction");
  MDB_val k = to_val(key), v;
  int rc = mdb_get(txn_, dbi_, &k, &v);
  if (rc == MDB_NOTFOUND) return std::nullopt;
  check_lmdb(rc, env_.path(), "get '" + std::string(key.substr(0, 64)) + "'");
  return from_val(v);
}

int LmdbTxn::put(std::string_view key, std::string_view value) {
  TORCH_CHECK(txn_, env_.path(), ": put on a finished transaction");
  TORCH_CHECK(!key.empty() && key.size() <= env_.max_key_size(), env_.path(), ": key of ",
              key.size(), " bytes: want 1..", env_.max_key_size());
  MDB_val k = to_val(key), v = to_val(value);
  int rc = mdb_put(txn_, dbi_, &k, &v, 0);
  if (rc == MDB_MAP_FULL) return rc;
  check_lmdb(rc, env_.path(), "put '" + std::string(key.substr(0, 64)) + "'");
  return rc;
}

void LmdbTxn::for_each(const std::function<bool(std::string_view, std::string_view)>& fn) const {
  TORCH_CHECK(txn_, env_.path(), ": iteration on a finished transaction");
  MDB_cursor* cur = nullptr;
  check_lmdb(mdb_cursor_open(txn_, dbi_, &cur), env_.path(), "open cursor");
  struct Closer {
    MDB_cursor* c;
    ~Closer() { mdb_cursor_close(c); }
  } closer{cur};
  MDB_val k, v;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
  while (rc == MDB_SUCCESS) {
    if (!fn(from_val(k), from_val(v))) return;
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  if (rc != MDB_NOTFOUND) check_lmdb(rc, env_.path(), "cursor iteration");
}

int LmdbTxn::try_commit() {
  TORCH_CHECK(txn_, env_.path(), ": commit of a finished transaction");
  MDB_txn* t = txn_;
  txn_ = nullptr;  // mdb_txn_commit frees the handle even on failure
  int rc = mdb_txn_commit(t);
  if (rc != MDB_MAP_FULL) check_lmdb(rc, env_.path(), "commit");
  return rc;
}

void LmdbTxn::commit() { check_lmdb(try_commit(), env_.path(), "commit"); }

void LmdbTxn::abort() {
  if (txn_) mdb_txn_abort(txn_);
  txn_ = nullptr;
}

// ------------------------------------------------------------------ reader
LmdbReader::LmdbReader(const std::string& path) : env_(path, LmdbEnv::Mode::kReadOnly) {}

std::optional<std::string> LmdbReader::get(const std::string& key) const {
  LmdbTxn txn(env_, true);
  auto v = txn.get(key);
  if (!v) return std::nullopt;
  return std::string(*v);
}

bool LmdbReader::contains(const std::string& key) const {
  LmdbTxn txn(env_, true);
  return txn.get(key).has_value();
}

std::vector<std::string> LmdbReader::keys() const {
  std::vector<std::string> out;
  for_each([&](std::string_view k, std::string_view) {
    out.emplace_back(k);
    return true;
  });
  return out;
}

void LmdbReader::for_each(
    const std::function<bool(std::string_view, std::string_view)>& fn) const {
  LmdbTxn txn(env_, true);
  txn.for_each(fn);
}

int64_t LmdbReader::size() const {
  LmdbTxn txn(env_, true);
  MDB_stat st;
  MDB_dbi dbi;
  check_lmdb(mdb_dbi_open(txn.get(), nullptr, 0, &dbi), path(), "open database");
  check_lmdb(mdb_stat(txn.get(), dbi, &st), path(), "mdb_stat");
  return static_cast<int64_t>(st.ms_entries);
}

// ------------------------------------------------------------------ writer
LmdbWriter::LmdbWriter(const std::string& path, size_t initial_map_size)
    : env_(path, LmdbEnv::Mode::kWrite, initial_map_size) {}

LmdbWriter::~LmdbWriter() {
  if (!pending_.empty())
    LOG_WARN("%s: %d uncommitted LMDB entries dropped", env_.path(), pending_.size());
}

std::optional<std::string> LmdbWriter::get(const std::string& key) const {
  LmdbTxn txn(env_, true);
  auto v = txn.get(key);
  if (!v) return std::nullopt;
  return std::string(*v);
}

void LmdbWriter::for_each(
    const std::function<bool(std::string_view, std::string_view)>& fn) const {
  LmdbTxn txn(env_, true);
  txn.for_each(fn);
}

void LmdbWriter::put(const std::string& key, std::string value) {
  TORCH_CHECK(!key.empty() && key.size() <= env_.max_key_size(), env_.path(), ": key of ",
              key.size(), " bytes: want 1..", env_.max_key_size());
  pending_bytes_ += key.size() + value.size();
  pending_.emplace_back(key, std::move(value));
  if (pending_bytes_ > (256ull << 20)) commit();
}

void LmdbWriter::commit() {
  if (pending_.empty()) return;
  for (int attempt = 0;; ++attempt) {
    TORCH_CHECK(attempt < 40, env_.path(), ": map still full after ", attempt, " resizes");
    int rc = MDB_SUCCESS;
    {
      LmdbTxn txn(env_, false);
      for (const auto& kv : pending_) {
        rc = txn.put(kv.first, kv.second);
        if (rc != MDB_SUCCESS) break;
      }
      if (rc == MDB_SUCCESS) rc = txn.try_commit();
    }  // an unfinished transaction is aborted here, before the map is resized
    if (rc == MDB_SUCCESS) break;
    if (rc != MDB_MAP_FULL) check_lmdb(rc, env_.path(), "commit");
    size_t grown = env_.map_size() * 2;
    LOG_DEBUG("%s: map full, growing to %d MiB", env_.path(), grown >> 20);
    env_.set_map_size(grown);
    ++num_resizes_;
  }
  pending_.clear();
  pending_bytes_ = 0;
}

}  // namespace causvid::data
