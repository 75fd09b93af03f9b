// A health check of a communicator: every collective, blocking and
// asynchronous, for each dtype, against values each rank computes locally.
// `muse-train --dry-run` runs it so a bad launch or a broken network shows up
// before a long job starts.
#pragma once

#include <string>
#include <vector>

#include "comm/communicator.h"

namespace muse::comm {

struct SelfCheckRow {
  std::string collective;  // "all_reduce(sum)"
  std::string dtype;
  int64_t wire_bytes = 0;  // sent by this rank (see CollectiveStats)
  double seconds = 0;
};

// Runs the checks with buffers of `n` elements per rank; throws DistError
// describing the first collective whose result is wrong.
std::vector<SelfCheckRow> run_self_check(Communicator& comm, int64_t n);

}  // namespace muse::comm
