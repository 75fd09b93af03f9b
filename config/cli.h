// Command-line options of the muse-* executables: declared once with their
// help, parsed with errors that name the option.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace muse::config {

// A bad command line; what() is the one-line message.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An option's value as an integer >= min, or a number >= min; UsageError
// "OPTION: expected ..." otherwise.
int64_t parse_int_option(const std::string& option, const std::string& value, int64_t min);
double parse_number_option(const std::string& option, const std::string& value, double min);

class ArgParser;

// For a tool's --help and --version flags: prints args.usage() or
// `version_line` on stdout and returns true when one was given (the tool
// then exits 0).
bool print_help_or_version(const ArgParser& args, bool help, bool version,
                           const std::string& version_line);

class ArgParser {
 public:
  ArgParser(std::string program, std::string synopsis, std::string description);

  // --name                    sets *out to true
  void flag(const std::string& name, bool* out, const std::string& help);
  // --name VALUE | --name=VALUE
  void option(const std::string& name, const std::string& metavar, std::string* out,
              const std::string& help);
  // --name VALUE, repeatable, values appended in order
  void repeated(const std::string& name, const std::string& metavar, std::vector<std::string>* out,
                const std::string& help);

  // Throws UsageError for unknown options (suggesting the nearest), missing
  // values and stray arguments.
  void parse(int argc, const char* const* argv);
  void parse(const std::vector<std::string>& args);

  // "usage: ...", the description and one line per option.
  std::string usage() const;

 private:
  struct Option {
    std::string name;
    std::string metavar;  // empty for flags
    std::string help;
    bool* flag = nullptr;
    std::string* value = nullptr;
    std::vector<std::string>* values = nullptr;
  };
  const Option* find(const std::string& name) const;

  std::string program_;
  std::string synopsis_;
  std::string description_;
  std::vector<Option> options_;
};

}  // namespace muse::config
