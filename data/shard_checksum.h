// The whole-file checksum of a shard, checked before libhdf5 reads a byte.
//
// libhdf5 trusts the sizes and offsets it finds in a file: a damaged shard
// can crash it (tests/fuzz/findings/) before any check of muse-train runs.
// So every shard carries a CRC-32C of all its bytes, and readers stream the
// whole file through it first. HDF5 lets a file begin with a "user block"
// that it never reads (its superblock then sits at byte 512); the checksum
// lives there, so h5dump, h5py and older muse-train read shards unchanged.
//
//   [0, 16)     magic "muse-shard-crc\n\0"
//   [16, 24)    size of the whole file in bytes, uint64 little-endian
//   [24, 28)    CRC-32C of the whole file, these 4 bytes read as zeros, uint32 little-endian
//   [28, 512)   zeros
//   [512, end)  the HDF5 file (superblock first)
#pragma once

#include <cstdint>
#include <filesystem>

namespace muse::data {

// HDF5's smallest user block: what the checksum header reserves.
inline constexpr int64_t kShardHeaderBytes = 512;

// Writes the checksum header into `path`, a complete HDF5 file created with
// a user block of kShardHeaderBytes (H5Pset_userblock), and leaves flushing
// to the caller. Throws std::invalid_argument when the HDF5 superblock is not
// at byte kShardHeaderBytes (sealing would overwrite it), std::runtime_error
// naming the file when reading or writing fails.
void seal_shard_file(const std::filesystem::path& path);

// Reads all of `path` and checks it against its checksum header. Throws
// DataError "FILE: problem" (one line) when the file has no header (an old
// shard: the message says how to add one), is not a shard, is shorter or
// longer than the header records, or its CRC-32C differs.
void verify_shard_file(const std::filesystem::path& path);

// Writes `to`: a header block, then all of `from`, an HDF5 shard without
// one, and seals it. HDF5 finds the superblock at byte kShardHeaderBytes and
// reads the copy as it read `from` (its addresses count from the
// superblock). Throws std::runtime_error naming the file that failed.
void write_sealed_copy(const std::filesystem::path& from, const std::filesystem::path& to);

// Whether `path` begins with the checksum header's magic (a shard written
// with a checksum), whatever the rest holds. Throws DataError naming the
// file when it cannot be read.
bool has_shard_checksum(const std::filesystem::path& path);

}  // namespace muse::data
