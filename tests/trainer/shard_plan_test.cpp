// The shard arithmetic: every element of a unit on exactly one rank, pieces
// that tile each shard. Pure arithmetic, no tensors. (Loading a checkpoint
// saved on another world size is range arithmetic in checkpoints/.)
#include "trainer/shard_plan.h"

#include <gtest/gtest.h>

#include <array>
#include <stdexcept>
#include <vector>

namespace muse::trainer {
namespace {

const std::vector<int> kWorldSizes = {1, 2, 3, 4, 7};
const std::vector<int64_t> kNumels = {0, 1, 2, 5, 10, 15, 16, 17, 100, 1000, 4099};

// A unit of parameters of the given sizes, back to back; alternating decay.
model::UnitLayout make_unit(const std::vector<int64_t>& sizes) {
  model::UnitLayout unit{.name = "test"};
  for (int64_t n : sizes) {
    unit.params.push_back({.id = model::ParamId::kAttnQ,
                           .row = &model::param_row(model::ParamId::kAttnQ),
                           .layer = 0,
                           .name = std::to_string(unit.params.size()),
                           .shape = {n},
                           .offset = unit.numel,
                           .numel = n,
                           .weight_decay = unit.params.size() % 2 == 0});
    unit.numel += n;
  }
  return unit;
}

TEST(ShardUnit, WorkedExample) {
  // The table of docs/trainer.md: 10 elements, 3 ranks, alignment 4.
  const UnitShards s = shard_unit(10, 3, 4);
  EXPECT_EQ(s.padded_numel, 12);
  EXPECT_EQ(s.shard_numel, 4);
  EXPECT_EQ(s.begin(0), 0);
  EXPECT_EQ(s.end(0), 4);
  EXPECT_EQ(s.begin(2), 8);
  EXPECT_EQ(s.end(2), 10);
  EXPECT_EQ(s.valid(2), 2);
}

TEST(ShardUnit, PaddedAndAligned) {
  for (int n_ranks : kWorldSizes)
    for (int64_t numel : kNumels)
      for (int64_t align : {1, 16}) {
        const UnitShards s = shard_unit(numel, n_ranks, align);
        EXPECT_EQ(s.padded_numel, s.shard_numel * n_ranks);
        EXPECT_EQ(s.shard_numel % align, 0);
        EXPECT_GE(s.padded_numel, numel);
        // The smallest such size: one aligned block less would not fit.
        EXPECT_LT(s.padded_numel - align * n_ranks, numel) << numel << " on " << n_ranks;
      }
}

TEST(ShardUnit, EveryElementOnExactlyOneRank) {
  for (int n_ranks : kWorldSizes)
    for (int64_t numel : kNumels) {
      const UnitShards s = shard_unit(numel, n_ranks);
      std::vector<int> owners(numel, 0);
      int64_t total = 0;
      for (int r = 0; r < n_ranks; ++r) {
        ASSERT_LE(s.begin(r), s.end(r));
        ASSERT_LE(s.valid(r), s.shard_numel);
        // Real elements sit at the start of the shard at padded index r*S.
        if (s.valid(r) > 0) {
          EXPECT_EQ(s.begin(r), r * s.shard_numel);
        }
        for (int64_t i = s.begin(r); i < s.end(r); ++i)
          ++owners[i];
        total += s.valid(r);
      }
      EXPECT_EQ(total, numel);
      for (int64_t i = 0; i < numel; ++i)
        ASSERT_EQ(owners[i], 1) << "element " << i << " of " << numel << " on " << n_ranks;
    }
}

TEST(ShardUnit, UnitSmallerThanWorld) {
  // 3 elements on 7 ranks with alignment 1: ranks 0-2 get one each, 3-6 only padding.
  const UnitShards s = shard_unit(3, 7, 1);
  EXPECT_EQ(s.shard_numel, 1);
  for (int r = 0; r < 7; ++r)
    EXPECT_EQ(s.valid(r), r < 3 ? 1 : 0);
  // With the default alignment rank 0 holds everything.
  const UnitShards a = shard_unit(3, 7);
  EXPECT_EQ(a.shard_numel, 16);
  EXPECT_EQ(a.valid(0), 3);
  EXPECT_EQ(a.valid(6), 0);
}

TEST(ShardUnit, RejectsBadArguments) {
  EXPECT_THROW(shard_unit(-1, 2), std::invalid_argument);
  EXPECT_THROW(shard_unit(10, 0), std::invalid_argument);
  EXPECT_THROW(shard_unit(10, 2, 0), std::invalid_argument);
}

TEST(ShardPieces, TileEachShardAndCoverEveryParameter) {
  const std::vector<std::vector<int64_t>> units = {
      {10}, {3, 4, 5}, {1, 1, 1, 1, 1}, {17, 33, 2, 64, 5}, {100, 7, 300}};
  for (const auto& sizes : units) {
    const model::UnitLayout unit = make_unit(sizes);
    for (int n_ranks : kWorldSizes)
      for (int64_t align : {1, 4, 16}) {
        const UnitShards s = shard_unit(unit.numel, n_ranks, align);
        std::vector<int64_t> covered(unit.params.size(), 0);
        for (int r = 0; r < n_ranks; ++r) {
          int64_t next = 0;  // the pieces must continue where the last one stopped
          for (const ShardPiece& p : shard_pieces(unit, s, r)) {
            const model::ParamSpec& spec = unit.params[p.param_index];
            ASSERT_EQ(p.shard_offset, next);
            ASSERT_GT(p.numel, 0);
            // The same element, seen from the shard and from the parameter.
            ASSERT_EQ(s.begin(r) + p.shard_offset, spec.offset + p.param_offset);
            ASSERT_LE(p.param_offset + p.numel, spec.numel);
            covered[p.param_index] += p.numel;
            next += p.numel;
          }
          EXPECT_EQ(next, s.valid(r));
        }
        for (size_t i = 0; i < sizes.size(); ++i)
          EXPECT_EQ(covered[i], sizes[i]);
      }
  }
}

TEST(ShardPieces, WorkedExample) {
  // The table of docs/trainer.md: parameters of 3, 4, 3 elements on 3 ranks
  // of 4 elements each; the middle and last parameters straddle shards.
  const model::UnitLayout unit = make_unit({3, 4, 3});
  const UnitShards s = shard_unit(10, 3, 4);
  auto as_tuples = [&](int rank) {
    std::vector<std::array<int64_t, 4>> out;
    for (const ShardPiece& p : shard_pieces(unit, s, rank))
      out.push_back({p.param_index, p.shard_offset, p.param_offset, p.numel});
    return out;
  };
  using Pieces = std::vector<std::array<int64_t, 4>>;
  EXPECT_EQ(as_tuples(0), (Pieces{{0, 0, 0, 3}, {1, 3, 0, 1}}));
  EXPECT_EQ(as_tuples(1), (Pieces{{1, 0, 1, 3}, {2, 3, 0, 1}}));
  EXPECT_EQ(as_tuples(2), (Pieces{{2, 0, 1, 2}}));
}

TEST(ShardPieces, RejectsAMismatchedPlanOrRank) {
  const model::UnitLayout unit = make_unit({3, 4});
  EXPECT_THROW(shard_pieces(unit, shard_unit(8, 2), 0), std::invalid_argument);
  EXPECT_THROW(shard_pieces(unit, shard_unit(7, 2), 2), std::out_of_range);
}

}  // namespace
}  // namespace muse::trainer
