#include "config/cli.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>

#include "config/loader.h"
#include "config/render.h"

namespace muse::config {

ArgParser::ArgParser(std::string program, std::string synopsis, std::string description)
    : program_(std::move(program)),
      synopsis_(std::move(synopsis)),
      description_(std::move(description)) {}

void ArgParser::flag(const std::string& name, bool* out, const std::string& help) {
  options_.push_back({name, "", help, out, nullptr, nullptr});
}

void ArgParser::option(const std::string& name, const std::string& metavar, std::string* out,
                       const std::string& help) {
  options_.push_back({name, metavar, help, nullptr, out, nullptr});
}

void ArgParser::repeated(const std::string& name, const std::string& metavar,
                         std::vector<std::string>* out, const std::string& help) {
  options_.push_back({name, metavar, help, nullptr, nullptr, out});
}

const ArgParser::Option* ArgParser::find(const std::string& name) const {
  for (const auto& o : options_) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

void ArgParser::parse(int argc, const char* const* argv) {
  parse(std::vector<std::string>(argv + 1, argv + argc));
}

void ArgParser::parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      throw UsageError("unexpected argument '" + arg + "' (see " + program_ + " --help)");
    }
    const auto eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const Option* o = find(name);
    if (!o) {
      std::vector<std::string> names;
      for (const auto& opt : options_)
        names.push_back(opt.name);
      const std::string near = suggest_key(name, names);
      throw UsageError("unknown option '" + name + "'" +
                       (near.empty() ? "" : " (did you mean '" + near + "'?)") + " (see " +
                       program_ + " --help)");
    }
    if (o->flag) {
      if (eq != std::string::npos) throw UsageError("option " + name + " takes no value");
      *o->flag = true;
      continue;
    }
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      throw UsageError("option " + name + " needs a value: " + name + " " + o->metavar);
    }
    if (o->value) *o->value = value;
    if (o->values) o->values->push_back(value);
  }
}

std::string ArgParser::usage() const {
  std::ostringstream out;
  out << "usage: " << program_ << " " << synopsis_ << "\n\n" << description_ << "\n\noptions:\n";
  size_t width = 0;
  for (const auto& o : options_)
    width = std::max(width, o.name.size() + 1 + o.metavar.size());
  for (const auto& o : options_) {
    const std::string head = o.name + (o.metavar.empty() ? "" : " " + o.metavar);
    const std::string indent(width + 4, ' ');
    // First help line beside the option, the rest aligned under it.
    const std::string help = wrap_text(o.help, 96 - indent.size(), indent);
    out << "  " << head << std::string(width - head.size() + 2, ' ')
        << (help.empty() ? "\n" : help.substr(indent.size()));
  }
  return out.str();
}

int64_t parse_int_option(const std::string& option, const std::string& value, int64_t min) {
  size_t used = 0;
  int64_t n = 0;
  try {
    n = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || n < min) {
    throw UsageError(option + ": expected an integer >= " + std::to_string(min) + ", got '" +
                     value + "'");
  }
  return n;
}

double parse_number_option(const std::string& option, const std::string& value, double min) {
  size_t used = 0;
  double x = 0;
  try {
    x = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || !(x >= min) || !std::isfinite(x)) {
    std::ostringstream bound;
    bound << min;
    throw UsageError(option + ": expected a number >= " + bound.str() + ", got '" + value + "'");
  }
  return x;
}

bool print_help_or_version(const ArgParser& args, bool help, bool version,
                           const std::string& version_line) {
  if (help) std::cout << args.usage();
  if (!help && version) std::cout << version_line << "\n";
  return help || version;
}

}  // namespace muse::config
