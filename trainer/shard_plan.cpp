#include "trainer/shard_plan.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace muse::trainer {
namespace {

void check_rank(const UnitShards& shards, int rank) {
  if (rank < 0 || rank >= shards.world_size)
    throw std::out_of_range("rank " + std::to_string(rank) + " outside a world of " +
                            std::to_string(shards.world_size));
}

}  // namespace

int64_t UnitShards::begin(int rank) const {
  return std::min(static_cast<int64_t>(rank) * shard_numel, numel);
}

int64_t UnitShards::end(int rank) const {
  return std::min(static_cast<int64_t>(rank + 1) * shard_numel, numel);
}

UnitShards shard_unit(int64_t numel, int world_size, int64_t align) {
  if (numel < 0) throw std::invalid_argument("unit numel must be >= 0");
  if (world_size < 1) throw std::invalid_argument("world size must be >= 1");
  if (align < 1) throw std::invalid_argument("shard alignment must be >= 1");
  const int64_t stride = align * world_size;  // padded_numel is a multiple of it
  const int64_t padded = (numel + stride - 1) / stride * stride;
  return {.numel = numel,
          .world_size = world_size,
          .align = align,
          .padded_numel = padded,
          .shard_numel = padded / world_size};
}

std::vector<ShardPiece> shard_pieces(const model::UnitLayout& unit, const UnitShards& shards,
                                     int rank) {
  if (unit.numel != shards.numel)
    throw std::invalid_argument("shard plan of " + std::to_string(shards.numel) +
                                " elements does not describe unit " + unit.name + " of " +
                                std::to_string(unit.numel));
  check_rank(shards, rank);
  const int64_t lo = shards.begin(rank), hi = shards.end(rank);
  std::vector<ShardPiece> pieces;
  for (size_t i = 0; i < unit.params.size(); ++i) {
    const model::ParamSpec& p = unit.params[i];
    const int64_t first = std::max(p.offset, lo), last = std::min(p.offset + p.numel, hi);
    if (first >= last) continue;
    pieces.push_back({.param_index = static_cast<int64_t>(i),
                      .shard_offset = first - lo,
                      .param_offset = first - p.offset,
                      .numel = last - first});
  }
  return pieces;
}

}  // namespace muse::trainer
