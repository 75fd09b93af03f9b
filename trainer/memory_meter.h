// Measuring what training holds in memory on the CPU: a counting wrapper
// around LibTorch's CPU allocator, with a cache of large blocks. The plan of
// trainer/memory_plan.h is compared with it (docs/memory.md).
#pragma once

#include <cstdint>

namespace muse::trainer {

struct MemoryStats {
  int64_t current_bytes = 0;  // live bytes of CPU tensors allocated since tracking began
  int64_t peak_bytes = 0;     // the most current_bytes has been since the last reset
};

// Routes every later CPU allocation through the counter; idempotent and
// thread-safe. Blocks allocated before the call are freed through their own
// deleter and never counted, so call it first thing in main() (before any
// tensor exists) for current_bytes to cover everything. CPU only: CUDA builds
// compare the plan with the CUDA caching allocator's statistics instead.
void track_cpu_memory();

// Zeros until track_cpu_memory() has been called.
MemoryStats cpu_memory_stats();

// The tracker also keeps freed CPU blocks of 1 MiB or more for reuse (on by
// default), so a step's large tensors do not come back from the OS as fresh
// pages that the kernel faults in and zeroes every step. Blocks in use plus
// blocks cached never exceed the most that were ever in use at once. Turning
// it off (or on) gives every cached block back to the OS.
void set_cpu_block_cache(bool enabled);

// Bytes of freed blocks the cache holds now (not part of current_bytes).
int64_t cpu_cached_bytes();

// Starts a new peak from the current live bytes (e.g. at each step).
void reset_peak_cpu_memory();

}  // namespace muse::trainer
