// checks/fixtures.h: the golden-fixture runner shared by `causvid check-fixtures` and the
// ctest parity suite. A fixture is a directory with meta.json ("kind", "tolerance", ...),
// io.safetensors (in.* inputs, out.* expected outputs) and optionally weights.safetensors
// (see ../shared/fixtures/README.md and KINDS.*.md). Dispatch is on meta.json "kind":
//   - a kind with a check function runs it;
//   - a kind that is known but whose issue has not landed reports "not implemented";
//   - any other kind is an error.
// A check function computes every out.* of the fixture and hands each to
// FixtureReport::compare(); outputs never compared count as failures.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace causvid::checks {

// Where a fixture runs: the models in `dtype` on `device`, inputs moved to `device`. fp32 is
// held to the fixture's own tolerance; bf16 to a looser one (bf16_tolerance below).
struct FixturePlacement {
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;
};

struct Fixture {
  std::string dir, name, kind;
  FixturePlacement place;
  nlohmann::json meta;
  std::shared_ptr<core::SafetensorsFile> io;
  std::shared_ptr<core::SafetensorsFile> weights;  // null when the fixture has none

  explicit Fixture(const std::string& dir);
  // An io tensor by full name ("in.x") on place.device; throws naming the fixture if absent.
  torch::Tensor in(const std::string& key) const;
  // Moves a module's weights to place.device / place.dtype.
  void to_place(torch::nn::Module& m) const { m.to(place.device, place.dtype); }
  bool has(const std::string& key) const { return io->contains(key); }
  // Every "out.*" key of io.safetensors.
  std::vector<std::string> outputs() const;
  // Weights under `prefix` with the prefix stripped ("real_score." -> Wan keys).
  core::TensorMap weights_with_prefix(const std::string& prefix) const;
};

struct Tolerance {
  double atol = 0, rtol = 0;
};

struct OutputCheck {
  std::string name;
  double max_abs = 0, max_rel = 0;
  Tolerance tol;
  bool pass = false;
  std::string detail;  // worst index and values when failing
};

class FixtureReport {
 public:
  explicit FixtureReport(const Fixture& f) : fixture_(f) {}
  // Compares `got` with the fixture's expected `out_name` under its tolerance
  // (meta.tolerance, or a matching meta.tolerance_overrides entry; integer outputs exactly).
  void compare(const std::string& out_name, const torch::Tensor& got);
  void fail(const std::string& why);
  // True when every out.* was compared and passed and no failure was recorded.
  bool pass() const;
  double max_abs() const;
  const std::vector<OutputCheck>& checks() const { return checks_; }
  std::vector<std::string> problems() const;

 private:
  const Fixture& fixture_;
  std::vector<OutputCheck> checks_;
  std::vector<std::string> failures_;
};

Tolerance tolerance_for(const nlohmann::json& meta, const std::string& out_name);
// The documented tolerance for bf16 runs of fp32 fixtures: bf16 keeps 8 mantissa bits
// (relative step 2^-8 = 3.9e-3) and the errors of a few layers add up, so an output passes when
// |got - want| <= f * max|want| + f * |want|, with f = 0.05, and f = 0.1 for the Wan VAE (a
// 30-odd layer conv stack whose decoder compounds the rounding); never tighter than the
// fixture's own tolerance.
Tolerance bf16_tolerance(const Tolerance& fp32, double max_abs_want, const std::string& kind);

using CheckFn = std::function<void(const Fixture&, FixtureReport&)>;

struct KindInfo {
  std::string kind;
  CheckFn fn;         // empty: known kind, not implemented yet
  std::string issue;  // which issue implements it
};

// The table of every known kind (checks/fixture_kinds.cpp).
const std::vector<KindInfo>& fixture_kinds();
const KindInfo* find_kind(const std::string& kind);

enum class FixtureStatus { kPass, kFail, kNotImplemented, kUnknownKind, kError };

struct FixtureResult {
  std::string dir, name, kind;
  FixtureStatus status = FixtureStatus::kError;
  double max_abs = 0;
  Tolerance tol;
  std::vector<OutputCheck> checks;
  std::string message;
};

FixtureResult run_fixture(const std::string& dir, const FixturePlacement& place = {});
// Fixture directories under each root: the root itself if it has meta.json, otherwise
// its immediate subdirectories that have one (sorted).
std::vector<std::string> discover_fixtures(const std::string& root);
// The repository's tests/fixtures (the public fixtures, so a fresh clone tests itself), then
// <shared_dir>/fixtures when it exists, then every entry of CAUSVID_FIXTURES (colon-separated).
std::vector<std::string> default_fixture_roots(const std::string& shared_dir);
// The fixture directories under those roots; a name already seen in an earlier root (the
// shared copy of a repository fixture) is taken once. A root that cannot be listed is
// returned itself, so that running it fails with the reason.
std::vector<std::string> default_fixture_dirs(const std::string& shared_dir);
std::string status_name(FixtureStatus s);

}  // namespace causvid::checks
