// cli/options.h: the CLI11 plumbing of the `causvid` binary. Every subcommand registers its
// options on a CLI::App made by Commands::add, with an action run after a successful parse;
// the option groups several commands share (--config/--set, --device, --seed, --quiet,
// --overwrite, dtypes) are defined once here. Help shows every flag's default.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace causvid::cli {

// A command's work, run after parsing; returns the process exit code.
using Action = std::function<int()>;

// The root app and the action of every (sub)command under it.
class Commands {
 public:
  Commands(const std::string& name, const std::string& description);
  CLI::App& root() { return root_; }
  // A leaf command under `parent` (the root when null) that runs `action`.
  CLI::App* add(const std::string& name, const std::string& description, Action action,
                CLI::App* parent = nullptr);
  // A command whose only job is to hold subcommands (causvid bench dit, lmdb info, ...).
  CLI::App* add_group(const std::string& name, const std::string& description,
                      CLI::App* parent = nullptr);
  // Parses argv and runs the chosen command. Exit codes: 0 after --help, 2 for a bad
  // command line (the message names the flag), 1 when the command throws, else its own.
  int run(int argc, char** argv);

 private:
  CLI::App root_;
  std::vector<std::pair<const CLI::App*, Action>> actions_;
};

// --config FILE and repeatable --set key=value.
struct ConfigArgs {
  std::string path;
  std::vector<std::string> sets;
};
CLI::Option* add_config_options(CLI::App& app, ConfigArgs& c, const std::string& config_help,
                                const std::string& set_help =
                                    "override one key, key=value (value parsed as YAML; "
                                    "repeatable)");
// A repeatable option: each occurrence takes one value.
CLI::Option* add_repeated(CLI::App& app, const std::string& name, std::vector<std::string>& v,
                          const std::string& help);
// --device: `dev` holds the default ("" = the config's device).
CLI::Option* add_device_option(CLI::App& app, std::string& dev,
                               const std::string& help = "auto, cpu, cuda (= cuda:LOCAL_RANK) "
                                                         "or cuda:N; '' = the config's device");
// A dtype flag: fp32, bf16, fp16 and their long names (the command narrows it further).
CLI::Option* add_dtype_option(CLI::App& app, const std::string& name, std::string& dtype,
                              const std::string& help);
CLI::Option* add_seed_option(CLI::App& app, int64_t& seed, const std::string& help = "random seed");
CLI::Option* add_overwrite_flag(CLI::App& app, bool& overwrite,
                                const std::string& help = "replace an existing --out");
// An option whose absence means "take it from the config": the value is set only when given.
template <typename T>
CLI::Option* add_optional(CLI::App& app, const std::string& name, std::optional<T>& v,
                          const std::string& help) {
  return app.add_option_function<T>(
      name, [&v](const T& x) { v = x; }, help);
}

}  // namespace causvid::cli
