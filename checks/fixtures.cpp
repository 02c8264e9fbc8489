// checks/fixtures.cpp: see fixtures.h.
#include "checks/fixtures.h"

#include <fnmatch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include "core/fs.h"

namespace causvid::checks {

namespace fs = std::filesystem;
using json = nlohmann::json;

Fixture::Fixture(const std::string& d) : dir(d) {
  name = fs::path(d).filename().string();
  if (name.empty()) name = fs::path(d).parent_path().filename().string();
  const std::string meta_path = d + "/meta.json";
  try {
    meta = json::parse(core::read_file(meta_path));
  } catch (const json::exception& e) {
    TORCH_CHECK(false, meta_path, ": invalid JSON: ", e.what());
  }
  TORCH_CHECK(meta.contains("kind") && meta["kind"].is_string(), meta_path,
              ": missing string field \"kind\"");
  kind = meta["kind"].get<std::string>();
  io = std::make_shared<core::SafetensorsFile>(d + "/io.safetensors");
  if (core::file_exists(d + "/weights.safetensors"))
    weights = std::make_shared<core::SafetensorsFile>(d + "/weights.safetensors");
}

torch::Tensor Fixture::in(const std::string& key) const {
  TORCH_CHECK(io->contains(key), dir, "/io.safetensors: missing tensor '", key, "'");
  return io->tensor(key).to(place.device);
}

std::vector<std::string> Fixture::outputs() const {
  std::vector<std::string> out;
  for (const auto& k : io->keys())
    if (k.rfind("out.", 0) == 0) out.push_back(k);
  return out;
}

core::TensorMap Fixture::weights_with_prefix(const std::string& prefix) const {
  TORCH_CHECK(weights, dir, ": fixture has no weights.safetensors");
  core::TensorMap out;
  for (const auto& k : weights->keys())
    if (k.rfind(prefix, 0) == 0) out[k.substr(prefix.size())] = weights->tensor(k);
  return out;
}

Tolerance tolerance_for(const json& meta, const std::string& out_name) {
  auto read = [](const json& j) {
    Tolerance t;
    t.atol = j.value("atol", 0.0);
    t.rtol = j.value("rtol", 0.0);
    return t;
  };
  if (meta.contains("tolerance_overrides")) {
    for (auto it = meta["tolerance_overrides"].begin(); it != meta["tolerance_overrides"].end();
         ++it) {
      if (it.key() == out_name || fnmatch(it.key().c_str(), out_name.c_str(), 0) == 0)
        return read(*it);
    }
  }
  TORCH_CHECK(meta.contains("tolerance"), "meta.json: missing \"tolerance\"");
  return read(meta["tolerance"]);
}

void FixtureReport::compare(const std::string& out_name, const torch::Tensor& got_in) {
  OutputCheck c;
  c.name = out_name;
  c.tol = tolerance_for(fixture_.meta, out_name);
  if (!fixture_.io->contains(out_name)) {
    c.detail = "fixture has no output named " + out_name;
    checks_.push_back(c);
    return;
  }
  torch::Tensor want = fixture_.io->tensor(out_name);
  torch::Tensor got = got_in.detach().to(torch::kCPU);
  if (fixture_.place.dtype == torch::kBFloat16 && at::isFloatingType(want.scalar_type()) &&
      want.numel() > 0)
    c.tol = bf16_tolerance(c.tol, want.to(torch::kFloat64).abs().max().item<double>(),
                           fixture_.kind);
  if (got.sizes() != want.sizes()) {
    std::ostringstream os;
    os << "shape " << got.sizes() << ", want " << want.sizes();
    c.detail = os.str();
    checks_.push_back(c);
    return;
  }
  const bool integral = !at::isFloatingType(want.scalar_type());
  if (integral) {
    c.tol = {0, 0};
    auto diff = (got.to(torch::kInt64) - want.to(torch::kInt64)).abs();
    c.max_abs = diff.numel() ? diff.max().item<double>() : 0.0;
    c.pass = c.max_abs == 0;
  } else {
    auto g = got.to(torch::kFloat64), w = want.to(torch::kFloat64);
    auto diff = (g - w).abs();
    auto bound = c.tol.atol + c.tol.rtol * w.abs();
    auto bad = (diff > bound) | (g.isnan() != w.isnan());
    c.max_abs = diff.numel() ? diff.nan_to_num(1e300).max().item<double>() : 0.0;
    c.max_rel = diff.numel() ? (diff / (w.abs() + 1e-12)).nan_to_num(1e300).max().item<double>() : 0.0;
    c.pass = !bad.any().item<bool>();
    if (!c.pass) {
      auto flat_idx = (diff - bound).nan_to_num(1e300).flatten().argmax().item<int64_t>();
      std::ostringstream os;
      os << "worst flat index " << flat_idx << ": got " << g.flatten()[flat_idx].item<double>()
         << " want " << w.flatten()[flat_idx].item<double>() << "; "
         << bad.sum().item<int64_t>() << " of " << bad.numel() << " elements out of tolerance";
      c.detail = os.str();
    }
  }
  checks_.push_back(c);
}

void FixtureReport::fail(const std::string& why) { failures_.push_back(why); }

std::vector<std::string> FixtureReport::problems() const {
  std::vector<std::string> out = failures_;
  for (const auto& c : checks_)
    if (!c.pass) out.push_back(c.name + ": " + c.detail);
  for (const auto& o : fixture_.outputs()) {
    bool seen = std::any_of(checks_.begin(), checks_.end(),
                            [&](const OutputCheck& c) { return c.name == o; });
    if (!seen) out.push_back(o + ": not produced");
  }
  return out;
}

bool FixtureReport::pass() const { return problems().empty(); }

double FixtureReport::max_abs() const {
  double m = 0;
  for (const auto& c : checks_) m = std::max(m, c.max_abs);
  return m;
}

std::string status_name(FixtureStatus s) {
  switch (s) {
    case FixtureStatus::kPass: return "PASS";
    case FixtureStatus::kFail: return "FAIL";
    case FixtureStatus::kNotImplemented: return "NOT IMPLEMENTED";
    case FixtureStatus::kUnknownKind: return "UNKNOWN KIND";
    case FixtureStatus::kError: return "ERROR";
  }
  return "?";
}

Tolerance bf16_tolerance(const Tolerance& fp32, double max_abs_want, const std::string& kind) {
  const double f = kind.find("wan_vae") != std::string::npos ? 0.1 : 0.05;  // + diffusers_wan_vae
  return {std::max(fp32.atol, f * max_abs_want), std::max(fp32.rtol, f)};
}

FixtureResult run_fixture(const std::string& dir, const FixturePlacement& place) {
  FixtureResult res;
  res.dir = dir;
  res.name = fs::path(dir).filename().string();
  try {
    Fixture f(dir);
    f.place = place;
    res.name = f.name;
    res.kind = f.kind;
    if (f.meta.contains("tolerance")) res.tol = tolerance_for(f.meta, "");
    const KindInfo* k = find_kind(f.kind);
    if (!k) {
      res.status = FixtureStatus::kUnknownKind;
      res.message = "unknown fixture kind '" + f.kind + "' in " + dir + "/meta.json";
      return res;
    }
    if (!k->fn) {
      res.status = FixtureStatus::kNotImplemented;
      res.message = "kind '" + f.kind + "' is not implemented yet (issue " + k->issue + ")";
      return res;
    }
    torch::NoGradGuard no_grad_default;  // checks that need grads enable them locally
    FixtureReport report(f);
    {
      torch::AutoGradMode enable(true);
      k->fn(f, report);
    }
    res.checks = report.checks();
    res.max_abs = report.max_abs();
    auto problems = report.problems();
    res.status = problems.empty() ? FixtureStatus::kPass : FixtureStatus::kFail;
    for (const auto& p : problems) res.message += (res.message.empty() ? "" : "; ") + p;
  } catch (const c10::Error& e) {
    res.status = FixtureStatus::kError;
    res.message = e.what_without_backtrace();
  } catch (const std::exception& e) {
    res.status = FixtureStatus::kError;
    res.message = e.what();
  }
  return res;
}

std::vector<std::string> discover_fixtures(const std::string& root) {
  std::vector<std::string> out;
  if (core::file_exists(root + "/meta.json")) return {root};
  std::error_code ec;
  TORCH_CHECK(fs::is_directory(root, ec), "fixture directory '", root, "' does not exist");
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.is_directory() && core::file_exists(e.path().string() + "/meta.json"))
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> default_fixture_roots(const std::string& shared_dir) {
  std::vector<std::string> roots = {std::string(CAUSVID_SOURCE_DIR) + "/tests/fixtures"};
  std::error_code ec;
  if (fs::is_directory(shared_dir + "/fixtures", ec)) roots.push_back(shared_dir + "/fixtures");
  if (const char* v = std::getenv("CAUSVID_FIXTURES")) {
    std::stringstream ss(v);
    std::string item;
    while (std::getline(ss, item, ':'))
      if (!item.empty()) roots.push_back(item);
  }
  return roots;
}

std::vector<std::string> default_fixture_dirs(const std::string& shared_dir) {
  std::vector<std::string> out;
  std::set<std::string> names;
  for (const auto& root : default_fixture_roots(shared_dir)) {
    try {
      for (const auto& d : discover_fixtures(root))
        if (names.insert(fs::path(d).filename().string()).second) out.push_back(d);
    } catch (const std::exception&) {
      out.push_back(root);  // unreadable root: run_fixture reports it as a failing fixture
    }
  }
  return out;
}

}  // namespace causvid::checks
