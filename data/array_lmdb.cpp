// data/array_lmdb.cpp: see array_lmdb.h.
#include "data/array_lmdb.h"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace causvid::data {

std::string array_row_key(const std::string& array, int64_t index) {
  return array + "_" + std::to_string(index) + "_data";
}
std::string array_shape_key(const std::string& array) { return array + "_shape"; }

// ------------------------------------------------------------------ reader
ArrayLmdb::ArrayLmdb(const std::string& path) : reader_(std::make_unique<LmdbReader>(path)) {}

const std::string& ArrayLmdb::path() const { return reader_->path(); }

std::vector<std::string> ArrayLmdb::arrays() const {
  std::vector<std::string> out;
  const std::string suffix = "_shape";
  reader_->for_each([&](std::string_view k, std::string_view) {
    if (k.size() > suffix.size() && k.substr(k.size() - suffix.size()) == suffix)
      out.emplace_back(k.substr(0, k.size() - suffix.size()));
    return true;
  });
  return out;
}

bool ArrayLmdb::has_array(const std::string& array) const {
  return reader_->contains(array_shape_key(array));
}

std::string parse_array_shape(const std::string& value, std::vector<int64_t>* shape,
                              int64_t* row_numel) {
  constexpr int64_t kMaxRowNumel = int64_t(1) << 60;
  shape->clear();
  *row_numel = 1;
  int64_t span = 1;  // the product of max(d, 1) over the row's dimensions
  std::istringstream is(value);
  std::string tok;
  while (is >> tok) {
    if (tok.size() > 18 || tok.find_first_not_of("0123456789") != std::string::npos)
      return "want space-separated non-negative integers";
    const int64_t d = std::stoll(tok);
    if (!shape->empty()) {
      // Also bounded with zero-size dimensions: strides multiply the others.
      if (d > 0 && span > kMaxRowNumel / d)
        return "a row of that shape is too large (over 2^60 elements)";
      span *= std::max<int64_t>(d, 1);
      *row_numel *= d;
    }
    shape->push_back(d);
    if (shape->size() > 16) return "more than 16 dimensions";
  }
  if (shape->empty()) return "empty, want the shape";
  return "";
}

torch::Tensor decode_array_row(std::string_view bytes, const std::vector<int64_t>& row_shape,
                               torch::ScalarType dtype, const std::string& where) {
  int64_t numel = 1, span = 1;
  for (auto s : row_shape) {
    TORCH_CHECK(s >= 0 && (s == 0 || span <= (int64_t(1) << 60) / s), where,
                ": row shape too large");
    span *= std::max<int64_t>(s, 1);
    numel *= s;
  }
  const auto esize = static_cast<int64_t>(c10::elementSize(dtype));
  TORCH_CHECK(numel <= (int64_t(1) << 60) / esize, where, ": row shape too large");
  TORCH_CHECK(static_cast<int64_t>(bytes.size()) == numel * esize, where, " holds ",
              bytes.size(), " bytes, want ", numel * esize, " (", numel, " x ",
              c10::toString(dtype), ")");
  auto t = torch::empty(row_shape, torch::TensorOptions().dtype(dtype));
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t.to(torch::kFloat32);
}

std::vector<int64_t> ArrayLmdb::shape(const std::string& array) const {
  const std::string key = array_shape_key(array);
  auto v = reader_->get(key);
  TORCH_CHECK(v, path(), ": missing key '", key,
              "' (not a CausVid array LMDB, or no array named '", array, "')");
  std::vector<int64_t> shape;
  int64_t row_numel = 0;
  const std::string err = parse_array_shape(*v, &shape, &row_numel);
  TORCH_CHECK(err.empty(), path(), ": key '", key, "' holds '", v->substr(0, 200), "': ", err);
  return shape;
}

torch::Tensor ArrayLmdb::tensor_row(const std::string& array, int64_t index,
                                    torch::ScalarType dtype) const {
  auto shp = shape(array);
  TORCH_CHECK(index >= 0 && index < shp[0], path(), ": row ", index, " of '", array,
              "' out of range [0, ", shp[0], ")");
  const std::string key = array_row_key(array, index);
  auto v = reader_->get(key);
  TORCH_CHECK(v, path(), ": missing key '", key, "' (row ", index, " of '", array, "')");
  return decode_array_row(*v, std::vector<int64_t>(shp.begin() + 1, shp.end()), dtype,
                          path() + ": key '" + key + "' (row shape from '" +
                              array_shape_key(array) + "')");
}

std::string ArrayLmdb::string_row(const std::string& array, int64_t index) const {
  const std::string key = array_row_key(array, index);
  auto v = reader_->get(key);
  TORCH_CHECK(v, path(), ": missing key '", key, "' (row ", index, " of '", array, "')");
  return *v;
}

// ------------------------------------------------------------------ writer
ArrayLmdbWriter::ArrayLmdbWriter(const std::string& path) : writer_(path) {}

void ArrayLmdbWriter::put_tensor_rows(const std::string& array, int64_t start_index,
                                      const torch::Tensor& rows, torch::ScalarType dtype) {
  TORCH_CHECK(rows.dim() >= 1, array, ": want rows [N, ...], got a scalar");
  auto r = rows.detach().to(torch::kCPU, dtype).contiguous();
  const size_t row_bytes = r.numel() / std::max<int64_t>(r.size(0), 1) * r.element_size();
  const char* base = static_cast<const char*>(r.data_ptr());
  for (int64_t i = 0; i < r.size(0); ++i)
    writer_.put(array_row_key(array, start_index + i), std::string(base + i * row_bytes, row_bytes));
}

void ArrayLmdbWriter::put_string_rows(const std::string& array, int64_t start_index,
                                      const std::vector<std::string>& rows) {
  for (size_t i = 0; i < rows.size(); ++i)
    writer_.put(array_row_key(array, start_index + static_cast<int64_t>(i)), rows[i]);
}

void ArrayLmdbWriter::finish(const std::map<std::string, std::vector<int64_t>>& shapes) {
  for (const auto& [array, shape] : shapes) {
    std::string s;
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? " " : "") + std::to_string(shape[i]);
    writer_.put(array_shape_key(array), s);
  }
  writer_.commit();
}

}  // namespace causvid::data
