// Sharded AdamW: the decay mask follows the parameters across shard
// boundaries, and AdamW on the N shards of a unit, put back together, is
// bitwise AdamW on the whole buffer. (adamw_compat.py checks the update
// itself against torch.optim.AdamW.)
//
// Legend: n unit numel, S shard numel, N world size.
#include "trainer/adamw.h"
#include "tests/trainer/test_unit.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <vector>

namespace muse::trainer {
namespace {

// Parameters of 37 (decay), 5 (no decay), 70001 (decay), 3 (no decay), 11 (decay)
// elements: boundaries fall inside shards for every N, and the unit is large
// enough for ATen to split element-wise ops over threads.
model::UnitLayout test_unit() {
  return testing::unit_of("test", {{37, true}, {5, false}, {70001, true}, {3, false}, {11, true}});
}

at::Tensor random(int64_t n, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn({n}, gen, at::kFloat);
}

// The padded buffer (N*S) of a (n) tensor, zeros in the padding.
at::Tensor padded(const at::Tensor& full, const UnitShards& s) {
  at::Tensor out = at::zeros({s.padded_numel}, at::kFloat);
  out.narrow(0, 0, s.numel).copy_(full);
  return out;
}

constexpr int kSteps = 6;
const AdamWOptions kOptions{.beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.3};
double lr_of(int step) {
  return 1e-2 * (1.0 + step) / kSteps;
}

TEST(DecayMask, FollowsParametersAcrossShards) {
  const model::UnitLayout unit = test_unit();
  for (int n_ranks = 1; n_ranks <= 4; ++n_ranks) {
    const UnitShards s = shard_unit(unit.numel, n_ranks);
    std::vector<at::Tensor> masks;
    for (int r = 0; r < n_ranks; ++r) {
      masks.push_back(decay_mask(unit, s, r));
      ASSERT_EQ(masks.back().size(0), s.shard_numel);
      // Padding never decays.
      EXPECT_FALSE(
          masks.back().narrow(0, s.valid(r), s.shard_numel - s.valid(r)).any().item<bool>());
    }
    const at::Tensor whole = at::cat(masks).narrow(0, 0, unit.numel);  // (n)
    for (const model::ParamSpec& p : unit.params) {
      const at::Tensor part = whole.narrow(0, p.offset, p.numel);
      EXPECT_EQ(part.all().item<bool>(), p.weight_decay) << p.name;
      EXPECT_EQ(part.any().item<bool>(), p.weight_decay) << p.name;
    }
  }
}

TEST(AdamWShard, ShardsGiveBitwiseTheWholeBufferResult) {
  const model::UnitLayout unit = test_unit();
  const at::Tensor init = random(unit.numel, 1);  // (n)
  std::vector<at::Tensor> grads;                  // kSteps x (n)
  for (int t = 0; t < kSteps; ++t)
    grads.push_back(random(unit.numel, 100 + t));

  // Reference: one shard holding the whole (unaligned, unpadded) buffer.
  const UnitShards whole = shard_unit(unit.numel, 1, 1);
  AdamWShard ref_opt(decay_mask(unit, whole, 0), kOptions);
  const at::Tensor ref = init.clone();
  for (int t = 0; t < kSteps; ++t)
    ref_opt.step(ref, grads[t], lr_of(t));
  EXPECT_FALSE(at::equal(ref, init));

  for (int n_ranks = 1; n_ranks <= 4; ++n_ranks) {
    const UnitShards s = shard_unit(unit.numel, n_ranks);
    const at::Tensor params = padded(init, s);  // (N*S); rank r's shard is a view
    std::vector<AdamWShard> opts;
    for (int r = 0; r < n_ranks; ++r)
      opts.emplace_back(decay_mask(unit, s, r), kOptions);
    for (int t = 0; t < kSteps; ++t) {
      const at::Tensor g = padded(grads[t], s);
      for (int r = 0; r < n_ranks; ++r)
        opts[r].step(params.narrow(0, r * s.shard_numel, s.shard_numel),
                     g.narrow(0, r * s.shard_numel, s.shard_numel), lr_of(t));
    }
    EXPECT_TRUE(at::equal(params.narrow(0, 0, unit.numel), ref)) << n_ranks << " ranks";
    EXPECT_TRUE(at::equal(params.narrow(0, unit.numel, s.padded_numel - unit.numel),
                          at::zeros({s.padded_numel - unit.numel})))
        << "padding stays zero";
    std::vector<at::Tensor> m, v;
    for (const AdamWShard& o : opts) {
      m.push_back(o.state().exp_avg);
      v.push_back(o.state().exp_avg_sq);
      EXPECT_EQ(o.state().step, kSteps);
    }
    EXPECT_TRUE(at::equal(at::cat(m).narrow(0, 0, unit.numel), ref_opt.state().exp_avg));
    EXPECT_TRUE(at::equal(at::cat(v).narrow(0, 0, unit.numel), ref_opt.state().exp_avg_sq));
  }
}

TEST(AdamWUpdate, CpuPassMatchesTheAtenOps) {
  // Both lerp forms (b1 > 0.5 and b1 <= 0.5), several steps, every element.
  const model::UnitLayout unit = test_unit();
  const UnitShards s = shard_unit(unit.numel, 1);
  const at::Tensor mask = decay_mask(unit, s, 0);
  for (const double beta1 : {0.8, 0.3}) {
    AdamWOptions options = kOptions;
    options.beta1 = beta1;
    std::vector<at::Tensor> fused = {random(s.shard_numel, 1), at::zeros({s.shard_numel}),
                                     at::zeros({s.shard_numel})};
    std::vector<at::Tensor> ops = {fused[0].clone(), fused[1].clone(), fused[2].clone()};
    at::Tensor scratch = at::empty({s.shard_numel}), denom = at::empty({s.shard_numel});
    for (int t = 1; t <= kSteps; ++t) {
      const at::Tensor g = random(s.shard_numel, 100 + t);
      const AdamWScalars scalars = adamw_scalars(options, t, lr_of(t));
      adamw_update_cpu(fused[0], g, fused[1], fused[2], mask, scalars);
      adamw_update_ops(ops[0], g, ops[1], ops[2], mask, scalars, scratch, denom);
    }
    // The moments bitwise; the weights to a rounding, because ATen's CPU sqrt
    // (MKL's vector math) may round the denominator 1 ulp away from std::sqrt.
    EXPECT_TRUE(at::equal(fused[1], ops[1])) << "beta1 " << beta1;
    EXPECT_TRUE(at::equal(fused[2], ops[2])) << "beta1 " << beta1;
    const double scale = ops[0].abs().max().item<double>();
    EXPECT_LE((fused[0] - ops[0]).abs().max().item<double>(), 1e-6 * scale) << "beta1 " << beta1;
  }
}

TEST(AdamWShard, NoDecayOnMaskedOutElements) {
  // Zero gradient and decay only: decayed elements shrink by 1 - lr*wd, others keep.
  const model::UnitLayout unit = test_unit();
  const UnitShards s = shard_unit(unit.numel, 1);
  AdamWShard opt(decay_mask(unit, s, 0), kOptions);
  const at::Tensor p = padded(at::ones({unit.numel}), s);
  opt.step(p, at::zeros({s.shard_numel}), 0.5);
  const float decayed = static_cast<float>(1.0 - 0.5 * kOptions.weight_decay);
  for (const model::ParamSpec& spec : unit.params)
    EXPECT_TRUE(at::equal(p.narrow(0, spec.offset, spec.numel),
                          at::full({spec.numel}, spec.weight_decay ? decayed : 1.0f)))
        << spec.name;
}

TEST(AdamWShard, SavedStateResumesBitwise) {
  const model::UnitLayout unit = test_unit();
  const UnitShards s = shard_unit(unit.numel, 2);
  const at::Tensor mask = decay_mask(unit, s, 1);
  const at::Tensor init = random(s.shard_numel, 7);
  std::vector<at::Tensor> grads;
  for (int t = 0; t < kSteps; ++t)
    grads.push_back(random(s.shard_numel, 200 + t));

  AdamWShard straight(mask, kOptions);
  const at::Tensor a = init.clone();
  for (int t = 0; t < kSteps; ++t)
    straight.step(a, grads[t], lr_of(t));

  AdamWShard first(mask, kOptions);
  const at::Tensor b = init.clone();
  for (int t = 0; t < kSteps / 2; ++t)
    first.step(b, grads[t], lr_of(t));
  const AdamWState saved{.exp_avg = first.state().exp_avg.clone(),
                         .exp_avg_sq = first.state().exp_avg_sq.clone(),
                         .step = first.state().step};
  AdamWShard resumed(mask, kOptions);
  resumed.load_state(saved);
  for (int t = kSteps / 2; t < kSteps; ++t)
    resumed.step(b, grads[t], lr_of(t));
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_EQ(resumed.state().step, kSteps);
}

TEST(AdamWShard, RejectsMismatchedTensors) {
  AdamWShard opt(at::zeros({16}, at::kBool), kOptions);
  EXPECT_THROW(opt.step(at::zeros({15}), at::zeros({16}), 1e-3), std::invalid_argument);
  EXPECT_THROW(opt.step(at::zeros({16}), at::zeros({16}, at::kDouble), 1e-3),
               std::invalid_argument);
  EXPECT_THROW(opt.load_state({.exp_avg = at::zeros({8}), .exp_avg_sq = at::zeros({8}), .step = 1}),
               std::invalid_argument);
}

}  // namespace
}  // namespace muse::trainer
