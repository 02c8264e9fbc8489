// data/array_lmdb.h: CausVid's "array rows in an LMDB" byte layout
// (causvid/ode_data/create_lmdb_iterative.py store_arrays_to_lmdb / get_array_shape_from_lmdb
// and causvid/data.py retrieve_row_from_lmdb), so that CausVid's published LMDBs
// (mixkit_latents_lmdb, the ODE-pair LMDB) read here and ours read in its Python code.
//
//   "<array>_<index>_data"  one row: a tensor row as float16 (or the array's dtype) bytes in
//                           C order, or a string row as UTF-8
//   "<array>_shape"         the array's shape, space-separated, row count first
//                           (e.g. "latents_shape" -> "1000 4 21 16 60 104")
//
//   ArrayLmdbWriter w(dir);
//   w.put_tensor_rows("latents", 0, latents_NSFCHW);   // float16 bytes
//   w.put_string_rows("prompts", 0, prompts);
//   w.finish({{"latents", {N, S, F, C, H, W}}, {"prompts", {N}}});  // shapes, commit
//
//   ArrayLmdb db(dir);
//   db.shape("latents");            // {N, S, F, C, H, W}
//   db.tensor_row("latents", i);    // [S, F, C, H, W] float32
//   db.string_row("prompts", i);
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/lmdb.h"

namespace causvid::data {

// "<array>_<index>_data" and "<array>_shape".
std::string array_row_key(const std::string& array, int64_t index);
std::string array_shape_key(const std::string& array);

// The value of "<array>_shape" ("1000 4 21 16 60 104": the row count first): 1..16
// space-separated non-negative integers of at most 18 digits whose row (all but the first)
// has at most 2^60 elements. Returns "" and fills *shape and *row_numel, else what is wrong
// (the caller names the file and key). Used by the reader and by `lmdb verify`.
std::string parse_array_shape(const std::string& value, std::vector<int64_t>* shape,
                              int64_t* row_numel);
// One row's bytes as a float32 tensor of `row_shape` stored as `dtype`; `where` (file and key)
// starts the error when the byte count does not match.
torch::Tensor decode_array_row(std::string_view bytes, const std::vector<int64_t>& row_shape,
                               torch::ScalarType dtype, const std::string& where);

class ArrayLmdb {
 public:
  // Opens read-only without locks (as CausVid: readonly, lock=False, readahead=False).
  explicit ArrayLmdb(const std::string& path);
  const std::string& path() const;
  // Arrays that have a "<array>_shape" key, sorted.
  std::vector<std::string> arrays() const;
  bool has_array(const std::string& array) const;
  // The stored shape (row count first); error naming the path and key when missing or
  // unparsable.
  std::vector<int64_t> shape(const std::string& array) const;
  int64_t rows(const std::string& array) const { return shape(array).at(0); }
  // Row `index` decoded from `dtype` bytes (default float16) with shape shape[1:], returned
  // as float32. Error naming path, key and byte counts when the row is missing or short.
  torch::Tensor tensor_row(const std::string& array, int64_t index,
                           torch::ScalarType dtype = torch::kHalf) const;
  std::string string_row(const std::string& array, int64_t index) const;

 private:
  std::unique_ptr<LmdbReader> reader_;
};

class ArrayLmdbWriter {
 public:
  explicit ArrayLmdbWriter(const std::string& path);
  // rows [N, ...]: row i is written under "<array>_<start+i>_data" as `dtype` bytes.
  void put_tensor_rows(const std::string& array, int64_t start_index, const torch::Tensor& rows,
                       torch::ScalarType dtype = torch::kHalf);
  void put_string_rows(const std::string& array, int64_t start_index,
                       const std::vector<std::string>& rows);
  // Writes "<array>_shape" for each array and commits.
  void finish(const std::map<std::string, std::vector<int64_t>>& shapes);
  LmdbWriter& raw() { return writer_; }

 private:
  LmdbWriter writer_;
};

}  // namespace causvid::data
