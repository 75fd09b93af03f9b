// The `telemetry.*` config section.
#pragma once

#include <cstdint>
#include <string>

#include "config/schema.h"

namespace muse::telemetry {

struct TelemetryConfig {
  int64_t log_every = 1;
  std::string progress = "auto";

  template <class V>
  void visit(V& v) {
    v.field(
        "log_every", log_every,
        {.help = "steps between metrics records and progress updates", .unit = "steps", .ge = 1});
    v.field("progress", progress,
            {.help = "progress line: auto (rewritten in place on a terminal, one line per update "
                     "otherwise), lines, or off",
             .choices = {"auto", "lines", "off"}});
  }
};

}  // namespace muse::telemetry
