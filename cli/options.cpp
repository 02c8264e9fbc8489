// cli/options.cpp: see options.h.
#include "cli/options.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <exception>

#include "core/log.h"
#include "core/runtime.h"

namespace causvid::cli {

Commands::Commands(const std::string& name, const std::string& description)
    : root_(description, name) {
  // Inherited by every subcommand created afterwards: defaults in --help, and a flag given
  // twice keeps its last value (as launchers that append flags expect).
  root_.option_defaults()->always_capture_default()->multi_option_policy(
      CLI::MultiOptionPolicy::TakeLast);
  root_.get_formatter()->column_width(34);
  root_.footer("causvid COMMAND --help shows a command's options.");
}

CLI::App* Commands::add(const std::string& name, const std::string& description, Action action,
                        CLI::App* parent) {
  CLI::App* app = (parent ? parent : &root_)->add_subcommand(name, description);
  actions_.emplace_back(app, std::move(action));
  return app;
}

CLI::App* Commands::add_group(const std::string& name, const std::string& description,
                              CLI::App* parent) {
  CLI::App* app = (parent ? parent : &root_)->add_subcommand(name, description);
  app->require_subcommand(1);
  return app;
}

int Commands::run(int argc, char** argv) {
  if (argc < 2) {  // no command: the overview, as a usage error
    std::fputs(root_.help().c_str(), stderr);
    return 2;
  }
  if (std::string(argv[1]) == "help") {
    std::fputs(root_.help().c_str(), stdout);
    return 0;
  }
  root_.require_subcommand(1);
  const std::string first = argv[1];
  if (first.empty() || first[0] != '-') {
    bool known = false;
    std::string names;
    for (const auto* sub : root_.get_subcommands({})) {
      known = known || sub->get_name() == first;
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "causvid: unknown command '%s' (commands: %s; causvid --help)\n",
                   first.c_str(), names.c_str());
      return 2;
    }
  }
  try {
    root_.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return root_.exit(e) == 0 ? 0 : 2;
  }
  // The deepest parsed subcommand is the one to run.
  const CLI::App* app = &root_;
  std::string name;
  while (!app->get_subcommands().empty()) {
    app = app->get_subcommands().front();
    name += (name.empty() ? "" : " ") + app->get_name();
  }
  const Action* action = nullptr;
  for (const auto& a : actions_)
    if (a.first == app) action = &a.second;
  TORCH_INTERNAL_ASSERT(action, "causvid ", name, ": no action registered");
  core::init_process();
  try {
    return (*action)();
  } catch (const c10::Error& e) {
    LOG_ERROR("%s: %s", name, e.what_without_backtrace());
  } catch (const std::exception& e) {
    LOG_ERROR("%s: %s", name, e.what());
  }
  return 1;
}

CLI::Option* add_repeated(CLI::App& app, const std::string& name, std::vector<std::string>& v,
                          const std::string& help) {
  return app.add_option(name, v, help)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->default_str("");
}

CLI::Option* add_config_options(CLI::App& app, ConfigArgs& c, const std::string& config_help,
                                const std::string& set_help) {
  add_repeated(app, "--set", c.sets, set_help)->type_name("KEY=VALUE");
  return app.add_option("--config", c.path, config_help)->type_name("YAML");
}

CLI::Option* add_device_option(CLI::App& app, std::string& dev, const std::string& help) {
  return app.add_option("--device", dev, help)->type_name("DEVICE");
}

CLI::Option* add_dtype_option(CLI::App& app, const std::string& name, std::string& dtype,
                              const std::string& help) {
  static const std::vector<std::string> kNames = {"fp32", "float32", "float", "bf16",
                                                  "bfloat16", "fp16", "float16", "half"};
  return app.add_option(name, dtype, help)->check(CLI::IsMember(kNames))->type_name("DTYPE");
}

CLI::Option* add_seed_option(CLI::App& app, int64_t& seed, const std::string& help) {
  return app.add_option("--seed", seed, help);
}

CLI::Option* add_overwrite_flag(CLI::App& app, bool& overwrite, const std::string& help) {
  return app.add_flag("--overwrite", overwrite, help);
}

}  // namespace causvid::cli
