// The global gradient norm and clipping on N ranks (mpirun -np 2 and 4)
// against the same computation on the unsharded gradients, done locally the
// way torch.nn.utils.clip_grad_norm_ does it. Every rank builds every unit's
// full gradient from fixed seeds and keeps its own shard; the shards' padding
// holds NaN to show that it never counts.
//
// Legend: n unit numel, S shard numel, v valid elements of a shard.
#include "trainer/grad_clip.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <limits>
#include <memory>
#include <vector>

#include "tests/comm/mpi_test_env.h"
#include "trainer/shard_plan.h"

namespace muse::trainer {
namespace {

// Units smaller and larger than the world, and one that is a multiple of 16.
const std::vector<int64_t> kUnitNumels = {1000, 37, 5, 3000, 64};

class GradClipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    comm_ = muse::testing::make_test_communicator();
    rank_ = comm_->rank();
    for (size_t u = 0; u < kUnitNumels.size(); ++u) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(10 + u);
      full_.push_back(at::randn({kUnitNumels[u]}, gen, at::kFloat));  // (n)
      const UnitShards s = shard_unit(kUnitNumels[u], comm_->size());
      at::Tensor shard = at::full({s.shard_numel}, std::numeric_limits<float>::quiet_NaN());
      shard.narrow(0, 0, s.valid(rank_))
          .copy_(full_.back().narrow(0, s.begin(rank_), s.valid(rank_)));
      shards_.push_back(shard);                              // (S)
      views_.push_back(shard.narrow(0, 0, s.valid(rank_)));  // (v)
      plans_.push_back(s);
    }
  }

  // clip_grad_norm_'s total norm: the 2-norm of the per-tensor 2-norms, in fp32.
  double torch_norm() const {
    std::vector<at::Tensor> norms;
    for (const at::Tensor& g : full_)
      norms.push_back(at::linalg_vector_norm(g, 2));
    return at::linalg_vector_norm(at::stack(norms), 2).item<double>();
  }

  std::unique_ptr<comm::Communicator> comm_;
  int rank_ = 0;
  std::vector<at::Tensor> full_;    // every unit's unsharded gradient
  std::vector<at::Tensor> shards_;  // this rank's padded shards
  std::vector<at::Tensor> views_;   // their real elements
  std::vector<UnitShards> plans_;
};

TEST_F(GradClipTest, NormEqualsTheUnshardedNorm) {
  double sum_sq = 0;  // fp64 reference
  for (const at::Tensor& g : full_)
    sum_sq += g.to(at::kDouble).square().sum().item<double>();
  const double norm = global_grad_norm(views_, *comm_);
  EXPECT_NEAR(norm, std::sqrt(sum_sq), 1e-6 * norm);
  EXPECT_NEAR(norm, torch_norm(), 1e-6 * norm);
}

TEST_F(GradClipTest, ClippingMatchesClipGradNorm) {
  const double expected_norm = torch_norm();
  const double max_norm = expected_norm / 3;
  const GradNorm r = clip_grad_norm(views_, max_norm, *comm_);
  ASSERT_TRUE(r.finite());
  EXPECT_NEAR(r.norm, expected_norm, 1e-6 * expected_norm);
  // torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, fp32.
  const float coef = static_cast<float>(max_norm / (expected_norm + 1e-6));
  EXPECT_NEAR(r.clip_coef, coef, 1e-6 * coef);
  for (size_t u = 0; u < full_.size(); ++u) {
    const UnitShards& s = plans_[u];
    const at::Tensor expected = full_[u].narrow(0, s.begin(rank_), s.valid(rank_)) * coef;
    EXPECT_TRUE(at::allclose(views_[u], expected, 1e-6, 1e-7)) << "unit " << u;
    // Padding untouched (still NaN).
    EXPECT_TRUE(shards_[u]
                    .narrow(0, s.valid(rank_), s.shard_numel - s.valid(rank_))
                    .isnan()
                    .all()
                    .item<bool>());
  }
  // The clipped gradients have the maximum norm.
  EXPECT_NEAR(global_grad_norm(views_, *comm_), max_norm, 1e-5 * max_norm);
}

TEST_F(GradClipTest, BelowTheMaximumOrOffLeavesGradientsAlone) {
  const std::vector<at::Tensor> before = {views_[0].clone(), views_[3].clone()};
  const GradNorm big = clip_grad_norm(views_, 10 * torch_norm(), *comm_);
  EXPECT_EQ(big.clip_coef, 1.0);
  const GradNorm off = clip_grad_norm(views_, 0, *comm_);
  EXPECT_EQ(off.clip_coef, 1.0);
  EXPECT_GT(off.norm, 0);
  EXPECT_TRUE(at::equal(views_[0], before[0]));
  EXPECT_TRUE(at::equal(views_[3], before[1]));
}

TEST_F(GradClipTest, NonFiniteOnOneRankIsSeenByAll) {
  // The last rank's shard of the 3000-element unit gets an inf; every rank
  // must learn the step is bad, and nobody scales anything.
  const at::Tensor before = views_[0].clone();
  if (rank_ == comm_->size() - 1) views_[3][0] = std::numeric_limits<float>::infinity();
  const GradNorm r = clip_grad_norm(views_, 1e-3, *comm_);
  EXPECT_FALSE(r.finite());
  EXPECT_EQ(r.clip_coef, 1.0);
  EXPECT_TRUE(at::equal(views_[0], before));
}

TEST(ClipCoefficient, AsClipGradNorm) {
  EXPECT_DOUBLE_EQ(clip_coefficient(4.0, 1.0), 1.0 / (4.0 + 1e-6));
  EXPECT_DOUBLE_EQ(clip_coefficient(0.5, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(clip_coefficient(0.0, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(clip_coefficient(4.0, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(clip_coefficient(std::numeric_limits<double>::quiet_NaN(), 1.0), 1.0);
  EXPECT_DOUBLE_EQ(clip_coefficient(std::numeric_limits<double>::infinity(), 1.0), 1.0);
}

}  // namespace
}  // namespace muse::trainer
