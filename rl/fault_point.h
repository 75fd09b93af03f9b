// Test-only: named points of an RL step at which the fault tests kill a rank
// (tests/e2e/rl_fault_test.sh), so that a kill lands in a chosen phase of a
// chosen step instead of wherever a timer happens to fire. The fault-injection
// library those tests preload (tests/faults/fault_inject.c) defines
// `muse_fault_point`; in any other process the symbol does not exist, the
// lookup happens once, and each point costs one branch.
#pragma once

#include <cstdint>

namespace muse::rl {

// Calls the preloaded `muse_fault_point(phase, step)` when there is one.
// `step` is numbered as the step's metrics record is (1 for the first step).
void fault_point(const char* phase, int64_t step);

}  // namespace muse::rl
