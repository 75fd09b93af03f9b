// The chunked head and loss against today's path, which makes the (B, T, V)
// logits: losses, log-probabilities, entropies and the gradients autograd
// takes through the plain path, for the hidden states and the output weight,
// tied (the weight also feeds the hidden states) or not, in fp64 and fp32,
// with chunk sizes that do not divide the tokens, one chunk and more.
//
// Shapes: B batch, T time, C width, V vocab, N = B*T tokens.
#include "model/chunked_loss.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>

namespace muse::model {
namespace {

constexpr int64_t kB = 3, kT = 11, kC = 16, kV = 37, kImage = 5;

// max |a - b| / max |b|: the error relative to the reference's scale.
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  const double scale = b.abs().max().item<double>();
  return (a - b).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

// Random inputs: hidden states (B, T, C) and the output weight (V, C), both
// leaves; tied, the hidden states also read rows of the weight, as tied
// embeddings do. Targets hold ignored (-100) and <image> positions.
struct Case {
  at::Tensor x;        // (B,T,C) leaf
  at::Tensor weight;   // (V,C) leaf
  at::Tensor inputs;   // (B,T) int64: the rows of weight the hidden states read when tied
  at::Tensor targets;  // (B,T) int64
  bool tied = false;

  HeadOutput head() const {
    const at::Tensor hidden =
        tied ? x + weight.index_select(0, inputs.reshape({-1})).view({kB, kT, kC}) : x * 1.0;
    return {.hidden = hidden, .output = weight};
  }
};

Case make_case(at::ScalarType dtype, bool tied, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto opts = at::TensorOptions().dtype(dtype);
  Case c;
  c.x = at::randn({kB, kT, kC}, gen, opts).requires_grad_();
  c.weight = (at::randn({kV, kC}, gen, opts) * 0.7).requires_grad_();
  c.inputs = at::randint(0, kV, {kB, kT}, gen, at::kLong);
  c.targets = at::randint(0, kV, {kB, kT}, gen, at::kLong);
  c.targets.index_put_({0, at::indexing::Slice(0, 3)}, -100);
  c.targets.index_put_({1, at::indexing::Slice(4, 8)}, kImage);
  c.targets.index_put_({2, kT - 1}, -100);
  c.tied = tied;
  return c;
}

struct Grads {
  at::Tensor x, weight;
};

Grads grads_of(const Case& c, const at::Tensor& loss) {
  c.x.mutable_grad() = at::Tensor();
  c.weight.mutable_grad() = at::Tensor();
  loss.backward();
  return {.x = c.x.grad().clone(), .weight = c.weight.grad().clone()};
}

// Today's loss in the inputs' dtype: text_loss's cross-entropy (which is
// text_loss itself in fp32).
at::Tensor plain_loss(const Case& c) {
  const at::Tensor counted = counted_targets(c.targets, kImage);
  return at::cross_entropy_loss(c.head().logits().reshape({-1, kV}),
                                at::where(counted, c.targets, -100).reshape({-1}), {},
                                at::Reduction::Sum, -100);
}

struct LossCase {
  at::ScalarType dtype;
  bool tied;
  int64_t chunk;
};

void PrintTo(const LossCase& c, std::ostream* out) {
  *out << c10::toString(c.dtype) << (c.tied ? " tied" : " untied") << " chunk " << c.chunk;
}

class ChunkedTextLoss : public ::testing::TestWithParam<LossCase> {};

TEST_P(ChunkedTextLoss, MatchesTheLogitsPathAndItsGradients) {
  const LossCase& p = GetParam();
  const Case c = make_case(p.dtype, p.tied, 7);
  const at::Tensor expected = plain_loss(c);
  const Grads want = grads_of(c, expected * 0.5);
  const TextLoss got = head_text_loss(c.head(), c.targets, kImage, p.chunk);
  EXPECT_EQ(got.count.item<int64_t>(), kB * kT - 3 - 4 - 1);
  EXPECT_EQ(got.sum.scalar_type(), p.dtype);
  EXPECT_LT(relative_error(got.sum, expected), 1e-6);
  const Grads have = grads_of(c, got.sum * 0.5);
  EXPECT_LT(relative_error(have.x, want.x), 1e-6);
  EXPECT_LT(relative_error(have.weight, want.weight), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ChunkedTextLoss,
    ::testing::Values(LossCase{at::kDouble, false, 4}, LossCase{at::kDouble, true, 4},
                      LossCase{at::kDouble, true, 1}, LossCase{at::kFloat, false, 7},
                      LossCase{at::kFloat, true, 7}, LossCase{at::kFloat, false, kB* kT},
                      LossCase{at::kFloat, true, 1000}),
    [](const ::testing::TestParamInfo<LossCase>& i) {
      return std::string(i.param.dtype == at::kDouble ? "Fp64" : "Fp32") +
             (i.param.tied ? "Tied" : "Untied") + "Chunk" + std::to_string(i.param.chunk);
    });

TEST(ChunkedTextLoss, ChunkZeroIsTextLossBitForBit) {
  const Case c = make_case(at::kFloat, false, 3);
  const TextLoss a = head_text_loss(c.head(), c.targets, kImage, 0);
  const TextLoss b = text_loss(c.head().logits(), c.targets, kImage);
  EXPECT_TRUE(at::equal(a.sum, b.sum));
  EXPECT_TRUE(at::equal(a.count, b.count));
}

// Per-token log-probabilities (what the RL policy loss needs) with an
// arbitrary upstream gradient per token, and their entropies.
TEST(ChunkedTokenLogprobs, MatchTheLogSoftmaxAndItsGradients) {
  for (const at::ScalarType dtype : {at::kDouble, at::kFloat}) {
    for (const bool tied : {false, true}) {
      for (const int64_t chunk : {int64_t{1}, int64_t{5}, kB * kT, int64_t{64}}) {
        SCOPED_TRACE(std::string(c10::toString(dtype)) + (tied ? " tied" : "") + " chunk " +
                     std::to_string(chunk));
        const Case c = make_case(dtype, tied, 11);
        const at::Tensor tokens = at::randint(0, kV, {kB * kT}, at::kLong);
        const at::Tensor upstream = at::randn({kB * kT}, at::TensorOptions().dtype(dtype));
        const at::Tensor lsm = c.head().logits().reshape({-1, kV}).log_softmax(-1);  // (N,V)
        const at::Tensor want_lp = lsm.gather(1, tokens.unsqueeze(1)).squeeze(1);
        const at::Tensor want_entropy = -(lsm.exp() * lsm).sum(-1).detach();
        const Grads want = grads_of(c, (want_lp * upstream).sum());
        at::Tensor entropy;
        const at::Tensor lp = chunked_token_logprobs(c.head().hidden.reshape({-1, kC}), c.weight,
                                                     tokens, chunk, &entropy);
        EXPECT_FALSE(entropy.requires_grad());
        EXPECT_LT(relative_error(lp, want_lp), 1e-6);
        EXPECT_LT(relative_error(entropy, want_entropy), 1e-6);
        const Grads have = grads_of(c, (lp * upstream).sum());
        EXPECT_LT(relative_error(have.x, want.x), 1e-6);
        EXPECT_LT(relative_error(have.weight, want.weight), 1e-6);
      }
    }
  }
}

// The RL form: right-aligned responses with a mask; 0 off the mask, and only
// masked positions reach the gradients.
TEST(HeadTokenLogprobs, AreZeroOffTheMaskAndMatchOnIt) {
  const Case c = make_case(at::kDouble, true, 5);
  const at::Tensor where = c.targets >= 0;  // (B,T)
  const at::Tensor tokens = c.targets.clamp_min(0);
  const at::Tensor lsm = c.head().logits().log_softmax(-1);  // (B,T,V)
  const at::Tensor want_lp = lsm.gather(2, tokens.unsqueeze(2)).squeeze(2) * where;
  const at::Tensor want_entropy = -(lsm.exp() * lsm).sum(-1).detach() * where;
  const Grads want = grads_of(c, (want_lp * want_lp).sum());
  const TokenLogprobs got = head_token_logprobs(c.head(), tokens, where, 4, true);
  EXPECT_LT(relative_error(got.logp, want_lp), 1e-6);
  EXPECT_LT(relative_error(got.entropy, want_entropy), 1e-6);
  EXPECT_TRUE(at::equal(got.logp.masked_select(~where), at::zeros({4}, got.logp.options())));
  const Grads have = grads_of(c, (got.logp * got.logp).sum());
  EXPECT_LT(relative_error(have.x, want.x), 1e-6);
  EXPECT_LT(relative_error(have.weight, want.weight), 1e-6);
}

// No counted target (e.g. a rank's empty micro-batch): the loss is 0 and
// backward runs, with zero gradients.
TEST(ChunkedTextLoss, NoCountedTargetGivesZeroAndZeroGradients) {
  Case c = make_case(at::kFloat, false, 2);
  c.targets.fill_(-100);
  const TextLoss l = head_text_loss(c.head(), c.targets, kImage, 8);
  EXPECT_EQ(l.count.item<int64_t>(), 0);
  EXPECT_EQ(l.sum.item<double>(), 0.0);
  const Grads g = grads_of(c, l.sum);
  EXPECT_EQ(g.x.abs().max().item<double>(), 0.0);
  EXPECT_EQ(g.weight.abs().max().item<double>(), 0.0);
}

// bf16 compute (the GPU default): logits in bf16 as head_forward makes them,
// softmax in fp32 as text_loss; the gradient differs from the plain path by
// bf16 rounding only.
TEST(ChunkedTextLoss, Bf16LogitsStayCloseToThePlainPath) {
  const Case c = make_case(at::kBFloat16, false, 9);
  const at::Tensor expected = text_loss(c.head().logits(), c.targets, kImage).sum;
  const Grads want = grads_of(c, expected);
  const TextLoss got = head_text_loss(c.head(), c.targets, kImage, 5);
  EXPECT_EQ(got.sum.scalar_type(), at::kFloat);
  EXPECT_LT(relative_error(got.sum, expected), 1e-5);
  const Grads have = grads_of(c, got.sum);
  EXPECT_LT(relative_error(have.x.to(at::kFloat), want.x.to(at::kFloat)), 2e-2);
  EXPECT_LT(relative_error(have.weight.to(at::kFloat), want.weight.to(at::kFloat)), 2e-2);
}

TEST(ChunkedTokenLogprobs, RejectsAChunkOfNoTokens) {
  const Case c = make_case(at::kFloat, false, 1);
  EXPECT_THROW(chunked_token_logprobs(c.x.reshape({-1, kC}), c.weight,
                                      c.targets.reshape({-1}).clamp_min(0), 0),
               ModelError);
}

}  // namespace
}  // namespace muse::model
