// `muse-train --config FILE --plan [--world-size N]`: a config checked for a
// launch on N ranks from one process, without starting it (no communicator,
// no GPU, no weights read). docs/configs.md describes what is checked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace muse {

// Prints the resolved config, the model, the data and the memory and FLOPs
// per rank on stdout; on stderr a warning for each input this machine does
// not have (naming what it could not check) and every error found, each
// one `error:` line. `world_size` 0 takes the config's plan.world_size.
// Returns 0 when the config would start, 2 when it would not.
int plan_config(const std::string& config_path, const std::vector<std::string>& overrides,
                int64_t world_size, const std::string& version_line);

}  // namespace muse
