// data/array_lmdb_walk.cpp: the liblmdb walk of verify_array_lmdb (data/lmdb_verify.h), run
// in the forked child. Plain liblmdb calls and strings only (no torch, no exceptions thrown
// on purpose): whatever a corrupt page does to liblmdb happens in the child.
#include <lmdb.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/array_lmdb.h"
#include "data/lmdb_verify.h"

namespace causvid::data {
namespace {

struct Row {
  int64_t index, bytes;
};

struct Walk {
  std::map<std::string, std::string> shapes;     // array -> "<array>_shape" value
  std::map<std::string, std::vector<Row>> rows;  // array -> its "<array>_<i>_data"
  int64_t entries = 0, other_keys = 0;
};

// "<array>_<i>_data" with i in canonical decimal -> (array, i).
bool parse_row_key(std::string_view k, std::string* array, int64_t* index) {
  const std::string_view suffix = "_data";
  if (k.size() <= suffix.size() || k.substr(k.size() - suffix.size()) != suffix) return false;
  k.remove_suffix(suffix.size());
  const size_t us = k.rfind('_');
  if (us == std::string_view::npos || us == 0) return false;
  std::string_view digits = k.substr(us + 1);
  if (digits.empty() || digits.size() > 18 || (digits.size() > 1 && digits[0] == '0')) return false;
  int64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *array = std::string(k.substr(0, us));
  *index = v;
  return true;
}

// The mappings of data.mdb in this process (liblmdb's, and any the parent had open before the
// fork), from /proc/self/maps by inode: mdb_env_info's me_mapaddr is only set for
// MDB_FIXEDMAP, so the map base is found this way.
using Ranges = std::vector<std::pair<uintptr_t, uintptr_t>>;

Ranges file_maps(ino_t ino) {
  Ranges out;
  FILE* f = std::fopen("/proc/self/maps", "r");
  if (!f) return out;
  char line[4096];
  while (std::fgets(line, sizeof(line), f)) {
    unsigned long lo = 0, hi = 0, off = 0, inode = 0;
    char perms[8], dev[16];
    if (std::sscanf(line, "%lx-%lx %7s %lx %15s %lu", &lo, &hi, perms, &off, dev, &inode) == 6 &&
        inode == static_cast<unsigned long>(ino) && off == 0)
      out.emplace_back(lo, hi);
  }
  std::fclose(f);
  return out;
}

// [v, v + size) lies inside the first `size` bytes of a mapping of the file.
bool inside(const MDB_val& v, const Ranges& maps, uint64_t size) {
  if (v.mv_size == 0) return true;
  const uintptr_t p = reinterpret_cast<uintptr_t>(v.mv_data);
  for (const auto& [lo, hi] : maps)
    if (p >= lo && p < hi) return p - lo <= size && v.mv_size <= size - (p - lo);
  return false;
}

std::string show_key(std::string_view k) {
  std::string out = "'";
  for (char c : k.substr(0, 80)) out += (c >= 32 && c < 127) ? c : '?';
  return out + (k.size() > 80 ? "...'" : "'");
}

// Visits every entry; "" or the error.
std::string walk_entries(const std::string& file, MDB_txn* txn, MDB_dbi dbi, const Ranges& maps,
                         uint64_t size, int64_t num_entries, Walk* w) {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc != MDB_SUCCESS) return file + ": open cursor: " + mdb_strerror(rc);
  MDB_val k, v;
  std::string prev, err;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS && err.empty();
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (!inside(k, maps, size) || !inside(v, maps, size) || k.mv_size == 0) {
      err = file + ": corrupt LMDB file (entry " + std::to_string(w->entries) +
            " points outside the file)";
      break;
    }
    std::string_view key(static_cast<const char*>(k.mv_data), k.mv_size);
    if (w->entries > 0 && !(std::string_view(prev) < key)) {
      err = file + ": corrupt LMDB file (key " + show_key(key) + " after " + show_key(prev) +
            ": keys out of order)";
      break;
    }
    if (++w->entries > num_entries) {
      err = file + ": corrupt LMDB file (the walk sees more than the " +
            std::to_string(num_entries) + " entries the tree records)";
      break;
    }
    prev.assign(key);
    // Readers look rows up by key: the lookup must reach this same entry (a damaged branch
    // key or child pointer sends it elsewhere; the cursor walk alone would not notice).
    MDB_val lk{prev.size(), prev.data()}, lv;
    const int lrc = mdb_get(txn, dbi, &lk, &lv);
    if (lrc != MDB_SUCCESS || lv.mv_data != v.mv_data || lv.mv_size != v.mv_size) {
      err = file + ": corrupt LMDB file (a lookup of key " + show_key(key) +
            " does not reach its entry: " +
            (lrc != MDB_SUCCESS ? mdb_strerror(lrc) : "another value") + ")";
      break;
    }
    std::string array;
    int64_t index = 0;
    const std::string_view shape_suffix = "_shape";
    if (key.size() > shape_suffix.size() &&
        key.substr(key.size() - shape_suffix.size()) == shape_suffix) {
      if (v.mv_size > 1024) {
        err = file + ": key " + show_key(key) + " holds " + std::to_string(v.mv_size) +
              " bytes, want a short shape string";
        break;
      }
      w->shapes[std::string(key.substr(0, key.size() - shape_suffix.size()))] =
          std::string(static_cast<const char*>(v.mv_data), v.mv_size);
    } else if (parse_row_key(key, &array, &index)) {
      w->rows[array].push_back({index, static_cast<int64_t>(v.mv_size)});
    } else {
      ++w->other_keys;
    }
  }
  mdb_cursor_close(cur);
  if (!err.empty()) return err;
  if (rc != MDB_NOTFOUND)
    return file + ": corrupt LMDB file (cursor walk: " + std::string(mdb_strerror(rc)) + ")";
  if (w->entries != num_entries)
    return file + ": corrupt LMDB file (the walk sees " + std::to_string(w->entries) +
           " entries, the tree records " + std::to_string(num_entries) + ")";
  return "";
}

// Parses "<array>_shape" (parse_array_shape); rows <= max_rows, row bytes (float16) <=
// max_bytes.
std::string parse_shape(const std::string& file, const std::string& array, const std::string& s,
                        int64_t max_rows, uint64_t max_bytes, std::vector<int64_t>* shape,
                        int64_t* row_bytes) {
  const std::string key = show_key(array + "_shape");
  int64_t numel = 0;
  const std::string err = parse_array_shape(s, shape, &numel);
  if (!err.empty()) return file + ": key " + key + " holds " + show_key(s) + ": " + err;
  if (static_cast<uint64_t>(numel) > max_bytes / 2)
    return file + ": key " + key + " holds " + show_key(s) +
           ": a row of that shape is too large: larger than the file";
  if ((*shape)[0] > max_rows)
    return file + ": key " + key + " says " + std::to_string((*shape)[0]) +
           " rows, but the LMDB holds only " + std::to_string(max_rows) + " entries";
  *row_bytes = shape->size() == 1 ? -1 : numel * 2;  // -1: string rows
  return "";
}

std::string check_array(const std::string& file, const std::string& array,
                        const std::vector<int64_t>& shape, int64_t row_bytes,
                        const std::vector<Row>& rows, int64_t* extra) {
  std::vector<int64_t> size_of(static_cast<size_t>(shape[0]), -1);
  for (const Row& r : rows) {
    if (r.index >= shape[0]) {
      ++*extra;
      continue;
    }
    size_of[static_cast<size_t>(r.index)] = r.bytes;
  }
  for (int64_t i = 0; i < shape[0]; ++i) {
    const std::string key = show_key(array + "_" + std::to_string(i) + "_data");
    if (size_of[i] < 0)
      return file + ": missing key " + key + " (row " + std::to_string(i) + " of '" + array +
             "', whose shape says " + std::to_string(shape[0]) + " rows)";
    if (row_bytes >= 0 && size_of[i] != row_bytes)
      return file + ": key " + key + " holds " + std::to_string(size_of[i]) + " bytes, want " +
             std::to_string(row_bytes) + " (float16 row of '" + array + "_shape')";
  }
  return "";
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Checks the layout of the walked entries; "S<summary>" or "E<error>".
std::string check_layout(const std::string& file, const Walk& w, uint64_t size) {
  if (w.shapes.empty())
    return "E" + file +
           ": no \"<array>_shape\" key: not a CausVid array LMDB (want e.g. latents_shape)";
  std::ostringstream sum;
  int64_t extra = w.other_keys;
  for (const auto& [array, value] : w.shapes) {
    std::vector<int64_t> shape;
    int64_t row_bytes = 0;
    std::string err = parse_shape(file, array, value, w.entries, size, &shape, &row_bytes);
    static const std::vector<Row> kNone;
    auto it = w.rows.find(array);
    if (err.empty())
      err = check_array(file, array, shape, row_bytes, it == w.rows.end() ? kNone : it->second,
                        &extra);
    if (!err.empty()) return "E" + err;
    sum << "  " << array << ": shape " << shape_str(shape) << ", rows " << shape[0];
    if (row_bytes < 0)
      sum << ", strings\n";
    else
      sum << ", float16 rows of " << row_bytes << " bytes\n";
  }
  for (const auto& [array, rows] : w.rows)
    if (!w.shapes.count(array)) extra += static_cast<int64_t>(rows.size());
  return "S" + std::to_string(w.entries) + "\n" + sum.str() + "  " + std::to_string(extra) +
         " other keys\n";
}

}  // namespace

// The child's walk: "S<entries>\n<summary>" or "E<error>". Declared in lmdb_verify.cpp.
std::string walk_array_lmdb(const std::string& dir, uint64_t file_size) {
  const std::string file = dir + "/data.mdb";
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != MDB_SUCCESS) return "E" + file + ": mdb_env_create: " + mdb_strerror(rc);
  rc = mdb_env_open(env, dir.c_str(), MDB_RDONLY | MDB_NOLOCK | MDB_NORDAHEAD, 0664);
  MDB_txn* txn = nullptr;
  if (rc == MDB_SUCCESS) rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn);
  MDB_dbi dbi = 0;
  if (rc == MDB_SUCCESS) rc = mdb_dbi_open(txn, nullptr, 0, &dbi);
  MDB_stat st{};
  if (rc == MDB_SUCCESS) rc = mdb_stat(txn, dbi, &st);
  if (rc != MDB_SUCCESS)
    return "E" + file + ": corrupt or unreadable LMDB file (open: " + mdb_strerror(rc) + ")";
  struct stat fst {};
  const Ranges maps = ::stat(file.c_str(), &fst) == 0 ? file_maps(fst.st_ino) : Ranges{};
  if (maps.empty()) return "E" + file + ": cannot find the LMDB map in /proc/self/maps";
  Walk w;
  std::string err =
      walk_entries(file, txn, dbi, maps, file_size, static_cast<int64_t>(st.ms_entries), &w);
  mdb_txn_abort(txn);
  mdb_env_close(env);
  if (!err.empty()) return "E" + err;
  return check_layout(file, w, file_size);
}

}  // namespace causvid::data
