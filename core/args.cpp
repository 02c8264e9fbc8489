// core/args.cpp: see args.h.
#include "core/args.h"

#include <c10/util/Exception.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace causvid::core {

ArgParser::ArgParser(std::string prog, std::string description)
    : prog_(std::move(prog)), description_(std::move(description)) {}

std::string& ArgParser::flag(const std::string& name, const std::string& def,
                             const std::string& help) {
  Flag f;
  f.name = name;
  f.def = def;
  f.help = help;
  f.value = std::make_unique<std::string>(def);
  flags_.push_back(std::move(f));
  return *flags_.back().value;
}

std::string& ArgParser::toggle(const std::string& name, const std::string& help) {
  std::string& v = flag(name, "0", help);
  flags_.back().is_toggle = true;
  return v;
}

std::vector<std::string>& ArgParser::multi(const std::string& name, const std::string& help) {
  Flag f;
  f.name = name;
  f.help = help;
  f.is_multi = true;
  f.values = std::make_unique<std::vector<std::string>>();
  flags_.push_back(std::move(f));
  return *flags_.back().values;
}

std::string& ArgParser::positional(const std::string& name, const std::string& help) {
  positional_help_.emplace_back(name, help);
  positionals_.push_back(std::make_unique<std::string>());
  return *positionals_.back();
}

std::vector<std::string>& ArgParser::rest(const std::string& name, const std::string& help,
                                          int min) {
  rest_ = std::make_unique<std::vector<std::string>>();
  rest_name_ = name;
  rest_help_ = help;
  rest_min_ = min;
  return *rest_;
}

std::string ArgParser::usage() const {
  std::ostringstream os;
  os << "usage: " << prog_ << (flags_.empty() ? "" : " [options]");
  for (const auto& p : positional_help_) os << " " << p.first;
  if (rest_) os << " " << rest_name_ << "...";
  os << "\n\n" << description_ << "\n";
  if (!positional_help_.empty() || rest_) {
    os << "\narguments:\n";
    for (const auto& p : positional_help_) os << "  " << p.first << "\n      " << p.second << "\n";
    if (rest_) os << "  " << rest_name_ << "...\n      " << rest_help_ << "\n";
  }
  os << "\noptions:\n";
  for (const auto& f : flags_) {
    os << "  " << f.name;
    if (!f.is_toggle) os << (f.is_multi ? " VALUE (repeatable)" : " VALUE");
    os << "\n      " << f.help;
    if (!f.is_toggle && !f.is_multi) os << " (default: " << (f.def.empty() ? "\"\"" : f.def) << ")";
    os << "\n";
  }
  os << "  --help\n      show this help\n";
  return os.str();
}

bool ArgParser::parse(int argc, char** argv) {
  size_t npos = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(usage().c_str(), stdout);
      exit_code_ = 0;
      return false;
    }
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      std::string name = a, value;
      bool has_value = false;
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_value = true;
      }
      Flag* f = nullptr;
      for (auto& g : flags_)
        if (g.name == name) f = &g;
      if (!f) {
        std::fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog_.c_str(), name.c_str());
        exit_code_ = 2;
        return false;
      }
      if (f->is_toggle) {
        *f->value = has_value ? value : "1";
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "%s: option '%s' needs a value\n", prog_.c_str(), name.c_str());
          exit_code_ = 2;
          return false;
        }
        value = argv[++i];
      }
      if (f->is_multi) {
        f->values->push_back(value);
      } else {
        *f->value = value;
      }
      continue;
    }
    if (npos < positionals_.size()) {
      *positionals_[npos++] = a;
    } else if (rest_) {
      rest_->push_back(a);
    } else {
      std::fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog_.c_str(), a.c_str());
      exit_code_ = 2;
      return false;
    }
  }
  if (npos < positionals_.size()) {
    std::fprintf(stderr, "%s: missing argument %s (see --help)\n", prog_.c_str(),
                 positional_help_[npos].first.c_str());
    exit_code_ = 2;
    return false;
  }
  if (rest_ && static_cast<int>(rest_->size()) < rest_min_) {
    std::fprintf(stderr, "%s: need at least %d %s (see --help)\n", prog_.c_str(), rest_min_,
                 rest_name_.c_str());
    exit_code_ = 2;
    return false;
  }
  return true;
}

int ArgParser::to_int(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  long x = std::strtol(v.c_str(), &end, 10);
  TORCH_CHECK(!v.empty() && end && *end == '\0', flag, ": got '", v, "', want an integer");
  return static_cast<int>(x);
}

double ArgParser::to_double(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  TORCH_CHECK(!v.empty() && end && *end == '\0', flag, ": got '", v, "', want a number");
  return x;
}

}  // namespace causvid::core
