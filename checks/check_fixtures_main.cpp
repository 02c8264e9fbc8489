// checks/check_fixtures_main.cpp: `causvid check-fixtures DIR...`: one line per fixture
// (name, kind, max abs error, tolerance, status); exit 1 if any is not PASS.
#include <cstdio>

#include "checks/fixtures.h"
#include "cli/commands.h"
#include "core/args.h"
#include "core/runtime.h"

namespace causvid::cli {

int check_fixtures_main(int argc, char** argv) {
  core::ArgParser p("causvid check-fixtures",
                    "Run the golden fixture checks. Each DIR is a fixture directory (with "
                    "meta.json) or a folder of them. Exit code 0 only if every fixture passes.");
  auto& dirs = p.rest("DIR", "fixture directory or folder of fixture directories", 1);
  auto& verbose = p.toggle("--verbose", "print every output's error, not only the worst");
  auto& device = p.flag("--device", "cpu", "run the models on cpu, cuda or cuda:N");
  auto& dtype = p.flag("--dtype", "fp32", "model dtype: fp32 (the fixture's tolerance) or bf16 "
                       "(checks::bf16_tolerance)");
  if (!p.parse(argc, argv)) return p.exit_code();
  checks::FixturePlacement place;
  place.device = core::resolve_device(device);
  place.dtype = core::parse_dtype(dtype, "--dtype");
  int bad = 0, total = 0;
  std::printf("%-44s %-18s %12s %22s  %s\n", "fixture", "kind", "max_abs_err", "tolerance(a,r)",
              "status");
  for (const auto& root : dirs) {
    for (const auto& d : checks::discover_fixtures(root)) {
      auto r = checks::run_fixture(d, place);
      ++total;
      char tol[64];
      std::snprintf(tol, sizeof(tol), "%.1e,%.1e", r.tol.atol, r.tol.rtol);
      std::printf("%-44s %-18s %12.3e %22s  %s\n", r.name.c_str(), r.kind.c_str(), r.max_abs, tol,
                  checks::status_name(r.status).c_str());
      if (verbose == "1") {
        for (const auto& c : r.checks)
          std::printf("    %-40s max_abs %.3e max_rel %.3e tol %.1e,%.1e %s\n", c.name.c_str(),
                      c.max_abs, c.max_rel, c.tol.atol, c.tol.rtol, c.pass ? "ok" : "NOT OK");
      }
      if (r.status != checks::FixtureStatus::kPass) {
        ++bad;
        std::printf("    %s\n", r.message.c_str());
      }
    }
  }
  std::printf("%d fixtures, %d passed, %d not passed\n", total, total - bad, bad);
  return bad == 0 ? 0 : 1;
}

}  // namespace causvid::cli
