// The forward pass: loss masking, causality, segments, images, input checks.
//
// Shapes: B batch, T time, V vocab, N_img images.
#include <gtest/gtest.h>

#include <string>

#include "model/model.h"
#include "model_test_util.h"

namespace muse::model {
namespace {

using at::indexing::Slice;
using testing::random_images;
using testing::test_config;
using testing::text_tokens;

// Largest absolute difference.
double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

void expect_model_error(const std::function<void()>& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one containing '" << fragment << "'";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Forward, LogitsShape) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 1);
  const at::Tensor logits = m.forward({.tokens = text_tokens(cfg, 3, 10, 1)});
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, 10, cfg.vocab_size}));
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
}

TEST(Forward, LossCountsTextTargetsOnly) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 1);
  const Inputs in{.tokens = text_tokens(cfg, 2, 9, 4)};
  at::Tensor targets = text_tokens(cfg, 2, 9, 5);
  targets.index_put_({0, Slice(0, 3)}, -100);
  targets.index_put_({1, Slice(4, 7)}, cfg.image_token_id);
  at::NoGradGuard no_grad;
  const at::Tensor logp = m.forward(in).log_softmax(-1);  // (B,T,V)
  double sum = 0;
  int n = 0;
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t t = 0; t < 9; ++t) {
      const int64_t y = targets[b][t].item<int64_t>();
      if (y == -100 || y == cfg.image_token_id) continue;
      sum -= logp[b][t][y].item<double>();
      ++n;
    }
  }
  EXPECT_EQ(n, 18 - 6);
  EXPECT_NEAR(m.loss(in, targets).item<double>(), sum / n, 1e-5);
  // Nothing counted: zero, not NaN.
  EXPECT_EQ(m.loss(in, at::full({2, 9}, -100, at::kLong)).item<double>(), 0.0);
}

TEST(Forward, IsCausal) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 2);
  at::NoGradGuard no_grad;
  at::Tensor tokens = text_tokens(cfg, 1, 12, 6);
  const at::Tensor before = m.forward({.tokens = tokens});
  tokens[0][7] = (tokens[0][7].item<int64_t>() + 1 - 4) % (cfg.vocab_size - 4) + 4;
  const at::Tensor after = m.forward({.tokens = tokens});
  EXPECT_EQ(max_diff(before.narrow(1, 0, 7), after.narrow(1, 0, 7)), 0.0);
  EXPECT_GT(max_diff(before.narrow(1, 7, 5), after.narrow(1, 7, 5)), 1e-3);
}

TEST(Forward, SegmentsDoNotSeeEachOther) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 3);
  at::NoGradGuard no_grad;
  at::Tensor tokens = text_tokens(cfg, 1, 20, 7);
  // Three segments; the first and last share an id but are separate runs.
  const at::Tensor seg = at::cat({at::full({1, 8}, 5, at::kLong), at::full({1, 7}, 2, at::kLong),
                                  at::full({1, 5}, 5, at::kLong)},
                                 1);
  const at::Tensor packed = m.forward({.tokens = tokens, .segment_ids = seg});
  // Each segment alone, positions from 0, gives the same logits: no leakage
  // across segments, and rotary positions restart.
  for (auto [start, len] : {std::pair<int64_t, int64_t>{0, 8}, {8, 7}, {15, 5}}) {
    const at::Tensor alone = m.forward({.tokens = tokens.narrow(1, start, len)});
    EXPECT_LT(max_diff(packed.narrow(1, start, len), alone), 1e-5) << start;
  }
  // Changing an earlier segment changes nothing in a later one.
  tokens.index_put_({0, Slice(0, 8)}, text_tokens(cfg, 1, 8, 8));
  const at::Tensor changed = m.forward({.tokens = tokens, .segment_ids = seg});
  EXPECT_EQ(max_diff(packed.narrow(1, 8, 12), changed.narrow(1, 8, 12)), 0.0);
  EXPECT_GT(max_diff(packed.narrow(1, 0, 8), changed.narrow(1, 0, 8)), 1e-3);
}

// Rotary attention depends on position differences only, so the logits above
// cannot tell whether positions restart: look at the rotary tables instead.
TEST(Forward, RotaryPositionsRestartPerSegment) {
  const ModelConfig cfg = test_config();
  const at::Tensor seg = at::tensor({7, 7, 7, 1, 1, 7, 7, 7, 7}, at::kLong).view({1, 9});
  const AttnContext ctx =
      attn_context(cfg, {.tokens = text_tokens(cfg, 1, 9, 1), .segment_ids = seg});
  const AttnContext plain = attn_context(cfg, {.tokens = text_tokens(cfg, 1, 9, 1)});
  EXPECT_EQ(ctx.cos.sizes(), (std::vector<int64_t>{1, 1, 9, cfg.head_dim()}));
  const std::vector<int64_t> expected_position = {0, 1, 2, 0, 1, 0, 1, 2, 3};
  for (int64_t t = 0; t < 9; ++t) {
    const at::Tensor want = plain.cos[0][0][expected_position[t]];
    EXPECT_TRUE(at::equal(ctx.cos[0][0][t], want)) << t;
  }
  EXPECT_EQ(ctx.mask.sizes(), (std::vector<int64_t>{1, 1, 9, 9}));
  EXPECT_TRUE(ctx.mask[0][0][4][3].item<bool>());   // same segment, earlier
  EXPECT_FALSE(ctx.mask[0][0][4][2].item<bool>());  // earlier segment
  EXPECT_FALSE(ctx.mask[0][0][6][1].item<bool>());  // same id, but a separate run
  EXPECT_FALSE(ctx.mask[0][0][5][6].item<bool>());  // later
  EXPECT_FALSE(plain.mask.defined());               // plain causal goes to the fused kernel
}

TEST(Forward, ImagesChangeLogitsFromTheirPositionsOn) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 4);
  at::NoGradGuard no_grad;
  at::Tensor tokens = text_tokens(cfg, 1, 14, 9);
  tokens.index_put_({0, Slice(5, 9)}, cfg.image_token_id);  // one image: 4 patches at 5..8
  const at::Tensor slots = at::tensor({0, 5}, at::kLong).view({1, 2});
  const at::Tensor a =
      m.forward({.tokens = tokens, .images = random_images(cfg, 1, 1), .image_slots = slots});
  const at::Tensor b =
      m.forward({.tokens = tokens, .images = random_images(cfg, 1, 2), .image_slots = slots});
  EXPECT_EQ(max_diff(a.narrow(1, 0, 5), b.narrow(1, 0, 5)), 0.0);
  for (int64_t t = 5; t < 14; ++t)
    EXPECT_GT(max_diff(a.narrow(1, t, 1), b.narrow(1, t, 1)), 1e-4) << t;
}

TEST(Forward, SeveralImagesPerRowAndRowsWithout) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 5);
  at::NoGradGuard no_grad;
  at::Tensor tokens = text_tokens(cfg, 3, 16, 10);
  tokens.index_put_({0, Slice(1, 9)}, cfg.image_token_id);  // two images back to back
  tokens.index_put_({2, Slice(10, 14)}, cfg.image_token_id);
  const at::Tensor images = random_images(cfg, 3, 3);
  const at::Tensor slots = at::tensor({0, 1, 0, 5, 2, 10}, at::kLong).view({3, 2});
  const at::Tensor batch = m.forward({.tokens = tokens, .images = images, .image_slots = slots});
  // Row 1 has no image: as if alone. Rows 0 and 2 as if alone with their images.
  EXPECT_LT(max_diff(batch[1], m.forward({.tokens = tokens.narrow(0, 1, 1)})[0]), 1e-5);
  const at::Tensor row0 =
      m.forward({.tokens = tokens.narrow(0, 0, 1),
                 .images = images.narrow(0, 0, 2),
                 .image_slots = at::tensor({0, 1, 0, 5}, at::kLong).view({2, 2})});
  EXPECT_LT(max_diff(batch[0], row0[0]), 1e-5);
  // The order of the images matters: swapping them changes row 0.
  const at::Tensor swapped =
      m.forward({.tokens = tokens,
                 .images = images,
                 .image_slots = at::tensor({0, 5, 0, 1, 2, 10}, at::kLong).view({3, 2})});
  EXPECT_GT(max_diff(batch[0], swapped[0]), 1e-4);
  EXPECT_EQ(max_diff(batch[2], swapped[2]), 0.0);
}

TEST(Forward, BadInputsAreErrors) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 6);
  at::Tensor tokens = text_tokens(cfg, 1, 10, 11);
  tokens.index_put_({0, Slice(2, 6)}, cfg.image_token_id);
  const at::Tensor one = random_images(cfg, 1, 1);
  const at::Tensor at2 = at::tensor({0, 2}, at::kLong).view({1, 2});
  expect_model_error([&] { m.forward({.tokens = tokens}); }, "but no images were given");
  expect_model_error(
      [&] {
        m.forward({.tokens = tokens,
                   .images = one,
                   .image_slots = at::tensor({0, 3}, at::kLong).view({1, 2})});
      },
      "do not fill exactly");
  expect_model_error(
      [&] {
        m.forward({.tokens = tokens,
                   .images = one,
                   .image_slots = at::tensor({1, 2}, at::kLong).view({1, 2})});
      },
      "does not fit");
  expect_model_error(
      [&] {
        m.forward({.tokens = tokens,
                   .images = random_images(cfg, 2, 1),
                   .image_slots = at::tensor({0, 2, 0, 2}, at::kLong).view({2, 2})});
      },
      "do not fill exactly");
  expect_model_error(
      [&] { m.forward({.tokens = tokens, .images = one.to(at::kFloat), .image_slots = at2}); },
      "uint8");
  expect_model_error(
      [&] { m.forward({.tokens = tokens, .images = one.narrow(1, 0, 4), .image_slots = at2}); },
      "images must be");
  EXPECT_NO_THROW(m.forward({.tokens = tokens, .images = one, .image_slots = at2}));
  expect_model_error(
      [&] {
        m.forward({.tokens = at::full({1, 3}, cfg.vocab_size, at::kLong)});
      },
      "outside the vocabulary");
  expect_model_error([&] { m.forward({.tokens = text_tokens(cfg, 1, cfg.max_seq_len + 1, 1)}); },
                     "longer than model.max_seq_len");
  expect_model_error(
      [&] {
        m.forward(
            {.tokens = text_tokens(cfg, 1, 5, 1), .segment_ids = at::zeros({1, 4}, at::kLong)});
      },
      "segment_ids");
}

}  // namespace
}  // namespace muse::model

namespace muse::model {
namespace {

// A decode step over a KV cache with grouped-query heads (3 query heads per
// key/value head, a head dim with a tail after 16-lane blocks, left padding
// closed by the mask) against SDPA over the same keys with enable_gqa, for
// the additive and the bool mask, with and without autograd.
TEST(Attention, GroupedDecodeStepMatchesSdpa) {
  constexpr int64_t B = 4, KV = 2, G = 3, D = 40, S_max = 12, start = 9;
  at::Generator gen = at::detail::createCPUGenerator(21);
  LayerCache cache{at::randn({B, KV, S_max, D}, gen), at::randn({B, KV, S_max, D}, gen)};
  const at::Tensor q = at::randn({B, KV * G, 1, D}, gen), k = at::randn({B, KV, 1, D}, gen),
                   v = at::randn({B, KV, 1, D}, gen);
  // Sequence b is padded on its first b positions.
  const at::Tensor open = at::arange(start + 1).unsqueeze(0) >= at::arange(B).unsqueeze(1);
  const at::Tensor additive = at::zeros({B, start + 1})
                                  .masked_fill_(open.logical_not(), -INFINITY)
                                  .view({B, 1, 1, start + 1});
  LayerCache expected_cache{cache.k.clone(), cache.v.clone()};
  expected_cache.k.narrow(2, start, 1).copy_(k);
  expected_cache.v.narrow(2, start, 1).copy_(v);
  const at::Tensor expected = at::scaled_dot_product_attention(
      q, expected_cache.k.narrow(2, 0, start + 1), expected_cache.v.narrow(2, 0, start + 1),
      open.view({B, 1, 1, start + 1}), 0.0, false, std::nullopt, /*enable_gqa=*/true);
  for (const at::Tensor& mask : {additive, open.view({B, 1, 1, start + 1})})
    for (const bool grad : {false, true}) {
      const at::AutoGradMode mode(grad);
      LayerCache live{cache.k.clone(), cache.v.clone()};
      const at::Tensor out = attention(
          q, k, v, AttnContext{.cos = {}, .sin = {}, .mask = mask, .cache_start = start}, &live);
      EXPECT_TRUE(at::allclose(out, expected, 1e-5, 1e-5))
          << "mask " << mask.scalar_type() << ", grad mode " << grad;
      EXPECT_TRUE(at::equal(live.k, expected_cache.k));
    }
}

}  // namespace
}  // namespace muse::model
