// How each unit's flat buffer is split over the ranks: pure arithmetic on
// sizes and offsets, no tensors and no communication, so it is unit-tested on
// its own and shared by the optimizer, the FSDP loop and checkpoints.
//
// Legend: N world size, r rank, n unit numel (unpadded), S shard numel.
//
// A unit's buffer is padded with zeros to N * S elements; rank r owns padded
// elements [r*S, (r+1)*S). S is a multiple of the alignment, so every shard
// starts aligned. The real elements of rank r's shard are the first
// valid(r) = end(r) - begin(r) ones; the rest is padding (only the last ranks
// have any, and a rank may hold padding only).
#pragma once

#include <cstdint>
#include <vector>

#include "model/layout.h"

namespace muse::trainer {

// 16 fp32 elements = 64 bytes: a cache line, and a whole AVX-512 register.
inline constexpr int64_t kShardAlign = 16;

struct UnitShards {
  int64_t numel = 0;         // n, unpadded
  int world_size = 1;        // N
  int64_t align = 1;         // S is a multiple of this; units: elements
  int64_t padded_numel = 0;  // N * S >= n
  int64_t shard_numel = 0;   // S

  // Rank r's real elements are [begin(r), end(r)) of the unpadded buffer
  // (empty when r holds padding only).
  int64_t begin(int rank) const;
  int64_t end(int rank) const;
  int64_t valid(int rank) const { return end(rank) - begin(rank); }
};

// The split of a unit of `numel` elements over `world_size` ranks: the
// smallest S that is a multiple of `align` with N * S >= n. Throws
// std::invalid_argument on a negative numel or non-positive world size or
// alignment.
UnitShards shard_unit(int64_t numel, int world_size, int64_t align = kShardAlign);

// The part of one parameter that lies in one rank's shard: elements
// [param_offset, param_offset + numel) of the flattened parameter sit at
// [shard_offset, shard_offset + numel) of the shard.
struct ShardPiece {
  int64_t param_index;  // into UnitLayout::params
  int64_t shard_offset;
  int64_t param_offset;
  int64_t numel;
};

// The pieces of rank r's shard in shard order, one per parameter that has
// elements there (none for a padding-only shard). They tile [0, valid(r)).
// `shards` must describe `unit` (same numel).
std::vector<ShardPiece> shard_pieces(const model::UnitLayout& unit, const UnitShards& shards,
                                     int rank);

}  // namespace muse::trainer
