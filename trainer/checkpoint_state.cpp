// trainer/checkpoint_state.cpp: see checkpoint_state.h.
#include "trainer/checkpoint_state.h"

#include <c10/util/Exception.h>

#include <limits>

namespace causvid::trainer {
namespace {

using json = nlohmann::json;

json parse_json(const std::string& text, const std::string& file) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    TORCH_CHECK(false, file, ": not valid JSON: ", e.what());
  }
}

// `key` of object `o`: an integer in [lo, hi] when present; required when `need`.
void check_int(const json& o, const char* key, int64_t lo, int64_t hi, bool need,
               const std::string& where) {
  if (!o.contains(key)) {
    TORCH_CHECK(!need, where, ": missing '", key, "'");
    return;
  }
  const json& v = o[key];
  bool ok = v.is_number_integer();
  if (ok && v.is_number_unsigned())
    ok = v.get<uint64_t>() <= static_cast<uint64_t>(hi) &&
         (lo <= 0 || v.get<uint64_t>() >= static_cast<uint64_t>(lo));
  else if (ok)
    ok = v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
  TORCH_CHECK(ok, where, ": '", key, "' is ", v.dump().substr(0, 80), ", want an integer in [",
              lo, ", ", hi, "]");
}

void check_string(const json& o, const char* key, bool need, const std::string& where) {
  if (!o.contains(key)) {
    TORCH_CHECK(!need, where, ": missing '", key, "'");
    return;
  }
  TORCH_CHECK(o[key].is_string(), where, ": '", key, "' is ", o[key].dump().substr(0, 80),
              ", want a string");
}

void check_object(const json& v, const std::string& where) {
  TORCH_CHECK(v.is_object(), where, ": want a JSON object, got ", v.type_name());
}

// A path inside the checkpoint: relative, no "..", no empty or absolute parts.
void check_relative_path(const std::string& rel, const std::string& where) {
  bool ok = !rel.empty() && rel.front() != '/' && rel.find('\0') == std::string::npos;
  size_t pos = 0;
  while (ok && pos <= rel.size()) {
    const size_t end = std::min(rel.find('/', pos), rel.size());
    const std::string part = rel.substr(pos, end - pos);
    ok = !part.empty() && part != "." && part != "..";
    pos = end + 1;
  }
  TORCH_CHECK(ok, where, ": file name '", rel.substr(0, 200),
              "' is not a relative path inside the checkpoint");
}

constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();

}  // namespace

void check_model_layout(const json& layout, const std::string& where) {
  check_object(layout, where);
  check_int(layout, "shard_world", 1, 65536, true, where);
  check_string(layout, "strategy", false, where);
  check_int(layout, "optimizer_step", 0, kMaxInt, false, where);
  TORCH_CHECK(layout.contains("units") && layout["units"].is_array(), where,
              ": want 'units', an array");
  const auto& units = layout["units"];
  for (size_t i = 0; i < units.size(); ++i) {
    const std::string w = where + " unit " + std::to_string(i);
    check_object(units[i], w);
    check_string(units[i], "name", true, w);
    check_int(units[i], "numel", 0, kMaxInt, true, w);
    check_int(units[i], "shard_numel", 0, kMaxInt, true, w);
    check_int(units[i], "opt_step", 0, kMaxInt, false, w);
    TORCH_CHECK(units[i].contains("params") && units[i]["params"].is_array(), w,
                ": want 'params', an array of names");
    for (const auto& p : units[i]["params"])
      TORCH_CHECK(p.is_string(), w, ": 'params' holds ", p.dump().substr(0, 80),
                  ", want names");
  }
}

json parse_checkpoint_state(const std::string& text, const std::string& file) {
  json st = parse_json(text, file);
  check_object(st, file);
  check_int(st, "step", 0, kMaxInt, true, file);
  check_int(st, "world_size", 1, 1 << 20, false, file);
  check_int(st, "data_position", 0, kMaxInt, false, file);
  check_int(st, "seed", std::numeric_limits<int64_t>::min(), kMaxInt, false, file);
  check_string(st, "stage", false, file);
  check_string(st, "format", false, file);
  if (st.contains("files")) {
    check_object(st["files"], file + " 'files'");
    for (const auto& [rel, want] : st["files"].items()) {
      const std::string w = file + " 'files' '" + rel.substr(0, 200) + "'";
      check_relative_path(rel, w);
      check_object(want, w);
      check_int(want, "bytes", 0, kMaxInt, true, w);
      check_int(want, "crc32c", 0, 0xffffffffLL, true, w);
    }
  }
  if (st.contains("models")) {
    check_object(st["models"], file + " 'models'");
    for (const auto& [name, layout] : st["models"].items())
      check_model_layout(layout, file + " model '" + name.substr(0, 200) + "'");
  }
  return st;
}

json parse_legacy_meta(const std::string& text, const std::string& file) {
  json meta = parse_json(text, file);
  check_object(meta, file);
  check_int(meta, "optimizer_step", 0, kMaxInt, false, file);
  TORCH_CHECK(meta.contains("modules") && meta["modules"].is_object(), file,
              ": want 'modules', an object");
  for (const auto& [name, layout] : meta["modules"].items())
    check_model_layout(layout, file + " module '" + name.substr(0, 200) + "'");
  return meta;
}

}  // namespace causvid::trainer
