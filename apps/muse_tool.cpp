// muse-data, muse-export and muse-generate: this build has their command-line
// front ends only; asking one to work is an error that names what is missing.
// Built once per tool with MUSE_TOOL_NAME and MUSE_TOOL_PURPOSE defined.
#include <iostream>

#include "config/cli.h"
#include "muse/version.h"
#include "telemetry/log.h"

int main(int argc, char** argv) {
  bool help = false, version = false;
  muse::config::ArgParser args(MUSE_TOOL_NAME, "[--help] [--version]", MUSE_TOOL_PURPOSE);
  args.flag("--version", &version, "print the version and exit");
  args.flag("--help", &help, "print this help and exit");
  try {
    args.parse(argc, argv);
  } catch (const muse::config::UsageError& e) {
    muse::telemetry::log_error(std::string(MUSE_TOOL_NAME) + ": " + e.what());
    return 2;
  }
  if (help) {
    std::cout << args.usage();
    return 0;
  }
  if (version) {
    std::cout << MUSE_TOOL_NAME << " " << MUSE_VERSION << " (commit " << MUSE_GIT_COMMIT << ")\n";
    return 0;
  }
  muse::telemetry::log_error(std::string(MUSE_TOOL_NAME) + ": " + MUSE_TOOL_MISSING +
                             " is not part of muse-train " + MUSE_VERSION);
  return 2;
}
