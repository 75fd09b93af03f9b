// The learning-rate schedule against hand values and against the closed forms
// of torch.optim.lr_scheduler where they coincide (LinearLR for the warmup,
// CosineAnnealingLR for cosine decay without warmup, LambdaLR with
// get_cosine_schedule_with_warmup's lambda), written out here.
#include "trainer/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>

namespace muse::trainer {
namespace {

constexpr double kPi = std::numbers::pi;

TEST(LrSchedule, HandValues) {
  // lr 1, W = 3, T = 7, floor 0.1: warmup 1/4, 2/4, 3/4; decay over 4 steps.
  LrSchedule s{.peak_lr = 1,
               .min_lr_ratio = 0.1,
               .warmup_steps = 3,
               .total_steps = 7,
               .decay = LrDecay::kLinear};
  const double linear[] = {0.25, 0.5, 0.75, 1.0, 0.775, 0.55, 0.325, 0.1, 0.1};
  for (int i = 0; i < 9; ++i)
    EXPECT_NEAR(s(i), linear[i], 1e-15) << "step " << i;
  s.decay = LrDecay::kCosine;
  // Halfway through the decay (s = 5): 0.1 + 0.9 * (1 + cos(pi/2)) / 2 = 0.55.
  EXPECT_NEAR(s(5), 0.55, 1e-15);
  EXPECT_NEAR(s(4), 0.1 + 0.9 * (1 + std::sqrt(0.5)) / 2, 1e-15);
  EXPECT_NEAR(s(7), 0.1, 1e-15);
  EXPECT_NEAR(s(100), 0.1, 1e-15);
  s.decay = LrDecay::kConstant;
  EXPECT_DOUBLE_EQ(s(2), 0.75);
  EXPECT_DOUBLE_EQ(s(3), 1.0);
  EXPECT_DOUBLE_EQ(s(1000), 1.0);
}

TEST(LrSchedule, WarmupIsTorchLinearLR) {
  // LinearLR(start_factor=1/(W+1), end_factor=1, total_iters=W):
  // factor(e) = start + (1 - start) * min(e, W) / W.
  const int64_t w = 10;
  const LrSchedule s{
      .peak_lr = 3e-4, .warmup_steps = w, .total_steps = 100, .decay = LrDecay::kConstant};
  const double start = 1.0 / (w + 1);
  for (int64_t e = 0; e <= 50; ++e) {
    const double factor = start + (1 - start) * std::min<double>(e, w) / w;
    EXPECT_NEAR(s(e), 3e-4 * factor, 1e-18) << "step " << e;
  }
}

TEST(LrSchedule, CosineWithoutWarmupIsTorchCosineAnnealingLR) {
  // CosineAnnealingLR(T_max=T, eta_min=m*lr):
  // eta_min + (lr - eta_min) * (1 + cos(pi * e / T)) / 2 for e <= T.
  const int64_t t_max = 37;
  const LrSchedule s{.peak_lr = 1e-3, .min_lr_ratio = 0.05, .total_steps = t_max};
  const double eta_min = 0.05 * 1e-3;
  for (int64_t e = 0; e <= t_max; ++e) {
    const double torch = eta_min + (1e-3 - eta_min) * (1 + std::cos(kPi * e / t_max)) / 2;
    EXPECT_NEAR(s(e), torch, 1e-18) << "step " << e;
  }
}

TEST(LrSchedule, AfterWarmupIsHuggingFaceLambda) {
  // LambdaLR with get_cosine_schedule_with_warmup's lambda (num_cycles 0.5)
  // past the warmup: max(0, (1 + cos(pi * p)) / 2), p = (e - W) / (T - W);
  // with min_lr_ratio 0 the two schedules agree from e = W on.
  const int64_t w = 5, t = 50;
  const LrSchedule cosine{.peak_lr = 2.0, .warmup_steps = w, .total_steps = t};
  const LrSchedule linear{
      .peak_lr = 2.0, .warmup_steps = w, .total_steps = t, .decay = LrDecay::kLinear};
  for (int64_t e = w; e <= t; ++e) {
    const double p = static_cast<double>(e - w) / (t - w);
    EXPECT_NEAR(cosine(e), 2.0 * std::max(0.0, 0.5 * (1 + std::cos(kPi * p))), 1e-15);
    // get_linear_schedule_with_warmup: max(0, (T - e) / (T - W)).
    EXPECT_NEAR(linear(e), 2.0 * std::max(0.0, static_cast<double>(t - e) / (t - w)), 1e-15);
  }
}

TEST(LrSchedule, DecaysMonotonicallyToTheFloor) {
  for (LrDecay d : {LrDecay::kCosine, LrDecay::kLinear}) {
    const LrSchedule s{
        .peak_lr = 1, .min_lr_ratio = 0.2, .warmup_steps = 4, .total_steps = 30, .decay = d};
    for (int64_t e = 1; e < 40; ++e) {
      if (e <= 4)
        EXPECT_GT(s(e), s(e - 1));
      else
        EXPECT_LE(s(e), s(e - 1));
      EXPECT_GE(s(e), 0.2 - 1e-15);
    }
  }
}

TEST(LrSchedule, WarmupLongerThanTheRun) {
  // T <= W: warmup as usual, then straight to the floor.
  const LrSchedule s{.peak_lr = 1, .min_lr_ratio = 0.5, .warmup_steps = 10, .total_steps = 5};
  EXPECT_DOUBLE_EQ(s(0), 1.0 / 11);
  EXPECT_DOUBLE_EQ(s(10), 0.5);
}

TEST(LrSchedule, FromConfig) {
  OptimConfig c;
  c.lr = 0.01;
  c.warmup_steps = 2;
  c.min_lr_ratio = 0;
  c.schedule = "linear";
  const LrSchedule s = make_lr_schedule(c, 12);
  EXPECT_EQ(s.decay, LrDecay::kLinear);
  EXPECT_EQ(s.total_steps, 12);
  EXPECT_NEAR(s(7), 0.005, 1e-17);
  c.schedule = "step";
  EXPECT_THROW(make_lr_schedule(c, 12), std::invalid_argument);
  EXPECT_THROW(s(-1), std::invalid_argument);
}

}  // namespace
}  // namespace muse::trainer
