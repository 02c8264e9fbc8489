// core/args.h: a small command-line parser for the causvid subcommands (llama.cpp style:
// every flag has a help line that shows its default, and --help prints them all).
//   ArgParser p("causvid inspect", "Print the tensors of a weight file.");
//   auto& file = p.positional("FILE", "weight file (.safetensors, .pt, .pth)");
//   auto& n = p.flag("--max-keys", "200", "print at most this many keys");
//   if (!p.parse(argc, argv)) return p.exit_code();   // --help or error handled
// Flags accept "--name value" and "--name=value"; repeatable flags collect every value.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace causvid::core {

class ArgParser {
 public:
  ArgParser(std::string prog, std::string description);

  // A flag with a default value ("" = empty). Returns a reference that parse() fills.
  std::string& flag(const std::string& name, const std::string& def, const std::string& help);
  // A boolean switch (no value): "1" when given, "0" otherwise.
  std::string& toggle(const std::string& name, const std::string& help);
  // A repeatable flag (e.g. --set k=v): every value in order.
  std::vector<std::string>& multi(const std::string& name, const std::string& help);
  // A required positional argument.
  std::string& positional(const std::string& name, const std::string& help);
  // Any number of trailing positional arguments (at least `min`).
  std::vector<std::string>& rest(const std::string& name, const std::string& help, int min = 0);

  // Returns false if the program should exit now (after --help: code 0; on error: 2,
  // with a message naming the flag on stderr).
  bool parse(int argc, char** argv);
  int exit_code() const { return exit_code_; }
  std::string usage() const;

  static int to_int(const std::string& flag, const std::string& v);
  static double to_double(const std::string& flag, const std::string& v);

 private:
  struct Flag {
    std::string name, def, help;
    bool is_toggle = false, is_multi = false;
    std::unique_ptr<std::string> value;
    std::unique_ptr<std::vector<std::string>> values;
  };
  std::string prog_, description_;
  std::vector<Flag> flags_;
  std::vector<std::pair<std::string, std::string>> positional_help_;
  std::vector<std::unique_ptr<std::string>> positionals_;
  std::unique_ptr<std::vector<std::string>> rest_;
  std::string rest_name_, rest_help_;
  int rest_min_ = 0;
  int exit_code_ = 0;
};

}  // namespace causvid::core
