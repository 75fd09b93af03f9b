// Packed rows without a dense mask: attention within segment boundaries
// (SDPA per group of equal-length segments on the CPU, flash's
// variable-length kernel on a GPU) against the (B, 1, T, T) mask it
// replaces, values and gradients, alone and through a whole model.
//
// Shapes: B batch, T time, H heads, KV kv-heads, D head dim, V vocab.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include <torch/csrc/autograd/autograd.h>

#include "model/model.h"
#include "model_test_util.h"

namespace muse::model {
namespace {

using testing::test_config;
using testing::text_tokens;

using Layout = std::vector<std::vector<int64_t>>;  // per row, its segments' lengths

// (B, T) int64 ids of rows cut into segments of the given lengths.
at::Tensor segment_ids(const Layout& rows) {
  std::vector<at::Tensor> out;
  for (const std::vector<int64_t>& lengths : rows) {
    std::vector<int64_t> ids;
    for (size_t i = 0; i < lengths.size(); ++i)
      ids.insert(ids.end(), lengths[i], static_cast<int64_t>(i % 2));  // alternate 0, 1, 0, ...
    out.push_back(at::tensor(ids, at::kLong));
  }
  return at::stack(out);
}

// max |a - b| over max |b|, or over `floor` when that is larger: the
// difference relative to the reference's scale.
double relative_diff(const at::Tensor& a, const at::Tensor& b, double floor = 0) {
  const at::Tensor af = a.to(at::kCPU, at::kDouble), bf = b.to(at::kCPU, at::kDouble);
  return (af - bf).abs().max().item<double>() / std::max(bf.abs().max().item<double>(), floor);
}

AttnContext context_of(const ModelConfig& cfg, const at::Tensor& segments, PackedAttention form,
                       at::Device device = at::kCPU) {
  const Inputs in{.tokens = at::zeros(segments.sizes(), at::kLong).to(device),
                  .segment_ids = segments.to(device)};
  return attn_context(cfg, in, form);
}

// Attention's output (B, H, T, D) and the gradients of q, k and v for the
// incoming gradient `grad_out`.
struct Attended {
  at::Tensor out, dq, dk, dv;
};

Attended attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                const AttnContext& ctx, const at::Tensor& grad_out) {
  const at::Tensor ql = q.detach().requires_grad_(), kl = k.detach().requires_grad_(),
                   vl = v.detach().requires_grad_();
  const at::Tensor out = attention(ql, kl, vl, ctx, nullptr);
  const auto g = torch::autograd::grad({out}, {ql, kl, vl}, {grad_out.to(out.dtype())});
  return {out.detach(), g[0], g[1], g[2]};
}

// Inputs and incoming gradients are of unit scale; a query that sees one
// key has no gradient, nor has that key, so q's and k's gradients are
// compared at least at that scale.
void expect_close(const Attended& got, const Attended& want, double tolerance) {
  EXPECT_LE(relative_diff(got.out, want.out), tolerance) << "output";
  EXPECT_LE(relative_diff(got.dq, want.dq, 1.0), tolerance) << "dq";
  EXPECT_LE(relative_diff(got.dk, want.dk, 1.0), tolerance) << "dk";
  EXPECT_LE(relative_diff(got.dv, want.dv), tolerance) << "dv";
}

struct HeadShape {
  int64_t heads, kv_heads, head_dim;
};

// The segments of `rows` attended through their boundaries and through the
// dense mask, in fp32 on the CPU.
void check_against_dense_mask(const Layout& rows, HeadShape shape, uint64_t seed) {
  ModelConfig cfg = test_config();
  cfg.n_heads = shape.heads;
  cfg.n_kv_heads = shape.kv_heads;
  cfg.dim = shape.heads * shape.head_dim;
  const at::Tensor seg = segment_ids(rows);
  const int64_t B = seg.size(0), T = seg.size(1), D = shape.head_dim;
  at::manual_seed(seed);
  const at::Tensor q = at::randn({B, shape.heads, T, D}), k = at::randn({B, shape.kv_heads, T, D}),
                   v = at::randn({B, shape.kv_heads, T, D}),
                   grad = at::randn({B, shape.heads, T, D});
  const AttnContext varlen = context_of(cfg, seg, PackedAttention::kVarlen);
  const AttnContext dense = context_of(cfg, seg, PackedAttention::kDenseMask);
  ASSERT_TRUE(varlen.segments.defined());
  ASSERT_FALSE(varlen.mask.defined());
  EXPECT_TRUE(at::equal(varlen.cos, dense.cos));  // rotary positions restart alike
  expect_close(attend(q, k, v, varlen, grad), attend(q, k, v, dense, grad), 1e-5);
}

TEST(PackedAttention, SeveralSegmentsMatchTheDenseMask) {
  check_against_dense_mask({{5, 9, 2}, {3, 3, 3, 7}}, {4, 2, 8}, 1);
  check_against_dense_mask({{40, 24}, {17, 30, 17}, {64}}, {4, 2, 16}, 2);
}

TEST(PackedAttention, OneSegmentPerRowMatchesTheDenseMask) {
  check_against_dense_mask({{16}, {16}}, {4, 2, 8}, 3);  // plain causal, no gather
  check_against_dense_mask({{16}, {4, 12}}, {4, 2, 8}, 4);
}

TEST(PackedAttention, SegmentsOfOnePositionMatchTheDenseMask) {
  check_against_dense_mask({{1, 1, 1, 13}, {1, 14, 1}}, {4, 2, 8}, 5);
  check_against_dense_mask({{1, 1, 1, 1}}, {4, 2, 8}, 6);
}

TEST(PackedAttention, GroupedAndUngroupedHeadsMatchTheDenseMask) {
  const Layout rows = {{6, 2, 8}, {8, 8}};
  check_against_dense_mask(rows, {4, 4, 8}, 7);   // one query head per kv head
  check_against_dense_mask(rows, {6, 2, 8}, 8);   // three per kv head
  check_against_dense_mask(rows, {8, 1, 16}, 9);  // multi-query
}

TEST(PackedAttention, SegmentsAreGroupedByLength) {
  const ModelConfig cfg = test_config();
  const AttnContext ctx =
      context_of(cfg, segment_ids({{3, 5, 3}, {5, 1, 5}}), PackedAttention::kVarlen);
  EXPECT_EQ(testing::to_vector(ctx.segments.cu_seqlens),
            (std::vector<int64_t>{0, 3, 8, 11, 16, 17, 22}));
  EXPECT_EQ(ctx.segments.max_len, 5);
  EXPECT_EQ(ctx.segments.lengths, (std::vector<int64_t>{1, 3, 5}));
  EXPECT_EQ(testing::to_vector(ctx.segments.positions[0]), (std::vector<int64_t>{16}));
  EXPECT_EQ(testing::to_vector(ctx.segments.positions[1]),
            (std::vector<int64_t>{0, 1, 2, 8, 9, 10}));
  // Every token once, at its place in the groups' concatenation.
  const at::Tensor order =
      at::cat({ctx.segments.positions[0], ctx.segments.positions[1], ctx.segments.positions[2]});
  EXPECT_TRUE(at::equal(order.index_select(0, ctx.segments.group_slot), at::arange(22)));
}

// A model's logits and every weight's gradient for a packed batch, with
// attention kept within segments as `form` says.
struct ModelRun {
  at::Tensor logits;
  std::vector<at::Tensor> grads;  // per unit, flat
};

ModelRun run_model(const Model& m, const Inputs& in, const at::Tensor& targets,
                   PackedAttention form) {
  const ModelConfig& cfg = m.config();
  const AttnContext ctx = attn_context(cfg, in, form);
  at::Tensor x = embed_forward(m.embed_weights(), cfg, in);  // (B,T,C)
  for (int64_t il = 0; il < cfg.n_layers; ++il)
    x = block_forward(m.block_weights(il), cfg, x, ctx);
  const at::Tensor logits = head_forward(m.head_weights(), cfg, x);  // (B,T,V)
  const TextLoss loss = text_loss(logits, targets, cfg.image_token_id);
  return {logits.detach(), torch::autograd::grad({loss.sum}, m.flat_params())};
}

TEST(PackedAttention, WholeModelForwardAndBackwardMatchTheDenseMask) {
  for (const bool tied : {true, false}) {
    const ModelConfig cfg = test_config(tied);
    const Model m(cfg, 11);
    const Layout rows = {{7, 1, 10, 6}, {24}, {12, 12}};
    const Inputs in{.tokens = text_tokens(cfg, 3, 24, 12), .segment_ids = segment_ids(rows)};
    const at::Tensor targets = text_tokens(cfg, 3, 24, 13);
    const ModelRun varlen = run_model(m, in, targets, PackedAttention::kVarlen);
    const ModelRun dense = run_model(m, in, targets, PackedAttention::kDenseMask);
    EXPECT_LE(relative_diff(varlen.logits, dense.logits), 1e-5) << tied;
    ASSERT_EQ(varlen.grads.size(), dense.grads.size());
    for (size_t u = 0; u < dense.grads.size(); ++u)
      EXPECT_LE(relative_diff(varlen.grads[u], dense.grads[u]), 1e-5) << "unit " << u;
  }
}

TEST(PackedAttention, DenseMaskOnlyForShortRowsOnTheCpu) {
  EXPECT_EQ(packed_attention_for(at::kCPU, kDenseMaskMaxLen), PackedAttention::kDenseMask);
  EXPECT_EQ(packed_attention_for(at::kCPU, kDenseMaskMaxLen + 1), PackedAttention::kVarlen);
  EXPECT_EQ(packed_attention_for(at::Device(at::kCUDA, 0), 16), PackedAttention::kVarlen);
  EXPECT_FALSE(flash_attention_supports(at::kFloat, 64));
  EXPECT_FALSE(flash_attention_supports(at::kBFloat16, 60));
  EXPECT_TRUE(flash_attention_supports(at::kBFloat16, 128));
  EXPECT_FALSE(uses_flash_varlen(at::zeros({1, 2, 3, 64}, at::kBFloat16)));  // on the CPU

  const ModelConfig cfg = test_config();
  const int64_t T = kDenseMaskMaxLen + 88;
  const at::Tensor seg = segment_ids({{300, 1, T - 301}});
  const AttnContext long_rows = context_of(cfg, seg, PackedAttention::kAuto);
  EXPECT_FALSE(long_rows.mask.defined());
  EXPECT_EQ(long_rows.segments.max_len, 300);
  const AttnContext short_rows = context_of(cfg, seg.narrow(1, 0, 64), PackedAttention::kAuto);
  EXPECT_EQ(short_rows.mask.sizes(), (std::vector<int64_t>{1, 1, 64, 64}));
  EXPECT_FALSE(short_rows.segments.defined());
  // Rows without segment ids: plain causal either way.
  const AttnContext plain = attn_context(cfg, {.tokens = at::zeros({1, T}, at::kLong)});
  EXPECT_FALSE(plain.mask.defined());
  EXPECT_FALSE(plain.segments.defined());
}

TEST(PackedAttention, KvCacheTakesNoSegments) {
  const ModelConfig cfg = test_config();
  const AttnContext ctx = context_of(cfg, segment_ids({{2, 4}}), PackedAttention::kVarlen);
  const int64_t D = cfg.head_dim();
  LayerCache cache{at::zeros({1, 2, 8, D}), at::zeros({1, 2, 8, D})};
  try {
    attention(at::zeros({1, 4, 6, D}), at::zeros({1, 2, 6, D}), at::zeros({1, 2, 6, D}), ctx,
              &cache);
    ADD_FAILURE() << "no error";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("dense mask"), std::string::npos) << e.what();
  }
}

// On a GPU: flash's variable-length kernel in bf16 against the dense mask
// in fp32, and the fp32 fallback (SDPA per group) against the same.
TEST(PackedAttention, FlashVarlenInBf16MatchesTheDenseMaskInFp32) {
#ifdef MUSE_WITH_CUDA
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU: the flash path is compiled, not run";
  const at::Device gpu(at::kCUDA, 0);
  ModelConfig cfg = test_config();
  cfg.n_heads = 8;
  cfg.n_kv_heads = 2;
  cfg.dim = 8 * 64;
  const at::Tensor seg = segment_ids({{100, 1, 27}, {128}, {64, 33, 31}});
  const int64_t B = 3, T = 128, D = 64;
  at::manual_seed(21);
  const at::Tensor q = at::randn({B, 8, T, D}, gpu), k = at::randn({B, 2, T, D}, gpu),
                   v = at::randn({B, 2, T, D}, gpu), grad = at::randn({B, 8, T, D}, gpu);
  const at::Tensor qh = q.to(at::kBFloat16);
  if (!uses_flash_varlen(qh)) GTEST_SKIP() << "the GPU is older than compute capability 8.0";
  const AttnContext varlen = context_of(cfg, seg, PackedAttention::kVarlen, gpu);
  const AttnContext dense = context_of(cfg, seg, PackedAttention::kDenseMask, gpu);
  const Attended reference = attend(q, k, v, dense, grad);
  expect_close(attend(qh, k.to(at::kBFloat16), v.to(at::kBFloat16), varlen, grad), reference, 2e-2);
  expect_close(attend(q, k, v, varlen, grad), reference, 1e-5);
#else
  GTEST_SKIP() << "a CPU build: the flash path is compiled in CUDA builds only";
#endif
}

}  // namespace
}  // namespace muse::model
