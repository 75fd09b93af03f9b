// CRC-32C (Castagnoli), the one checksum of muse-train's files: checkpoint
// segments (checkpoints/) and whole data shards (data/shard_checksum.h).
#pragma once

#include <cstddef>
#include <cstdint>

namespace muse::config {

// CRC-32C of `size` bytes, continuing from `crc` (0 to start): the CPU's
// instruction where there is one (x86-64 SSE4.2), else tables.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);

namespace detail {
// The table (software) form, whatever the CPU; the same results.
uint32_t crc32c_table(const void* data, size_t size, uint32_t crc = 0);
}  // namespace detail

}  // namespace muse::config
