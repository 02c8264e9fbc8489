// core/config_main.cpp: `causvid config`, prints the resolved and validated config of a YAML
// file after --set overrides (what a training run would use), or lists every known key.
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "core/args.h"
#include "core/config.h"

namespace causvid::cli {

int config_main(int argc, char** argv) {
  core::ArgParser p("causvid config",
                    "Print the resolved, validated config (YAML) of a config file with "
                    "--set overrides applied.");
  auto& file = p.flag("--config", "", "config YAML file (e.g. configs/wan_causal_dmd.yaml)");
  auto& sets = p.multi("--set", "override one key, key=value (value parsed as YAML)");
  auto& out = p.flag("--out", "", "also write the resolved config to this file");
  auto& no_validate = p.toggle("--no-validate", "print without running validate()");
  auto& list_keys = p.toggle("--list-keys", "list every key with its type, default and doc");
  if (!p.parse(argc, argv)) return p.exit_code();

  if (list_keys == "1") {
    std::string section;
    for (const auto& k : core::config_keys()) {
      if (k.section != section) {
        section = k.section;
        std::printf("# ---- %s\n", section.c_str());
      }
      std::printf("%-38s %s%s\n    %s; default %s\n", k.name.c_str(), k.type.c_str(),
                  k.required_ode   ? " (required)"
                  : k.required_dmd ? " (required for dmd)"
                                   : "",
                  k.doc.c_str(), k.default_value.c_str());
    }
    return 0;
  }
  if (file.empty()) {
    std::fprintf(stderr, "causvid config: --config FILE is required (see --help)\n");
    return 2;
  }
  core::Config c = core::read_config(file);
  core::apply_overrides(c, sets);
  if (no_validate != "1") c.validate();
  if (!out.empty()) core::save_config(c, out);
  std::fputs(core::config_to_yaml(c).c_str(), stdout);
  return 0;
}

}  // namespace causvid::cli
