// Seeded initialisation of the flat buffers, and gradients into them.
//
// Shapes: B batch, T time, V vocab, C model width.
#include <gtest/gtest.h>

#include <cmath>

#include "model/model.h"
#include "model/weights.h"
#include "model_test_util.h"

namespace muse::model {
namespace {

using testing::random_images;
using testing::test_config;
using testing::text_tokens;

TEST(Init, SameSeedSameWeights) {
  const Model a(test_config(), 7), b(test_config(), 7);
  ASSERT_EQ(a.flat_params().size(), b.flat_params().size());
  for (size_t u = 0; u < a.flat_params().size(); ++u)
    EXPECT_TRUE(at::equal(a.flat_params()[u], b.flat_params()[u])) << u;
}

TEST(Init, OtherSeedOtherWeights) {
  const Model a(test_config(), 7), b(test_config(), 8);
  for (size_t u = 0; u < a.flat_params().size(); ++u) {
    for (const auto& p : a.layout()[u].params) {
      if (p.row->init == ParamInit::kNormal || p.row->init == ParamInit::kNormalScaled) {
        EXPECT_FALSE(at::equal(param_view(a.layout()[u], a.flat_params()[u], p.id),
                               param_view(b.layout()[u], b.flat_params()[u], p.id)))
            << p.name;
      }
    }
  }
}

TEST(Init, ParametersDrawIndependently) {
  const Model m(test_config(), 7);
  const BlockWeights b0 = m.block_weights(0), b1 = m.block_weights(1);
  EXPECT_FALSE(at::equal(b0.wk, b0.wv));  // same shape, different generators
  EXPECT_FALSE(at::equal(b0.wq, b1.wq));  // same parameter, different units
}

TEST(Init, UnitIsAPureFunctionOfConfigSeedAndIndex) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 11);
  const auto layout = model_layout(cfg);
  // Initialising one unit alone (as a rank that owns it would) gives the same values.
  for (int64_t u = static_cast<int64_t>(layout.size()) - 1; u >= 0; --u)
    EXPECT_TRUE(at::equal(init_unit(cfg, layout[u], u, 11), m.flat_params()[u].detach())) << u;
}

TEST(Init, Distributions) {
  ModelConfig cfg = test_config(/*tied=*/false);
  cfg.dim = 128;
  cfg.n_heads = 4;
  cfg.ffn_hidden = 256;
  cfg.vocab_size = 512;
  cfg.n_layers = 8;
  const Model m(cfg, 3);
  const EmbedWeights e = m.embed_weights();
  const BlockWeights b = m.block_weights(5);
  const HeadWeights h = m.head_weights();
  EXPECT_TRUE(at::equal(b.attn_norm, at::ones_like(b.attn_norm)));
  EXPECT_TRUE(at::equal(b.ffn_norm, at::ones_like(b.ffn_norm)));
  EXPECT_TRUE(at::equal(h.norm, at::ones_like(h.norm)));
  EXPECT_TRUE(at::equal(e.patch_proj_bias, at::zeros_like(e.patch_proj_bias)));
  const double std = cfg.init_std, scaled = cfg.init_std / std::sqrt(2.0 * cfg.n_layers);
  EXPECT_NEAR(e.tok_embed.std().item<double>(), std, 0.02 * std);
  EXPECT_NEAR(e.tok_embed.mean().item<double>(), 0, 0.02 * std);
  EXPECT_NEAR(b.wq.std().item<double>(), std, 0.05 * std);
  EXPECT_NEAR(h.output.std().item<double>(), std, 0.02 * std);
  EXPECT_NEAR(b.wo.std().item<double>(), scaled, 0.05 * scaled);
  EXPECT_NEAR(b.w_down.std().item<double>(), scaled, 0.05 * scaled);
}

TEST(Init, TiedHeadReadsTheTokenTable) {
  const Model m(test_config(/*tied=*/true), 1);
  EXPECT_EQ(m.head_weights().output.sizes(), m.embed_weights().tok_embed.sizes());
  EXPECT_EQ(m.head_weights().output.data_ptr(), m.embed_weights().tok_embed.data_ptr());
}

TEST(Gradients, FillOneFlatGradientPerUnit) {
  for (bool tied : {true, false}) {
    const ModelConfig cfg = test_config(tied);
    const Model m(cfg, 5);
    Inputs in{.tokens = text_tokens(cfg, 2, 12, 1)};
    in.tokens.index_put_({0, at::indexing::Slice(2, 6)}, cfg.image_token_id);
    in.images = random_images(cfg, 1, 2);
    in.image_slots = at::tensor({0, 2}, at::kLong).view({1, 2});
    const at::Tensor targets = text_tokens(cfg, 2, 12, 3);
    m.loss(in, targets).backward();
    for (size_t u = 0; u < m.flat_params().size(); ++u) {
      const at::Tensor& flat = m.flat_params()[u];
      EXPECT_TRUE(flat.is_leaf());
      ASSERT_TRUE(flat.grad().defined()) << u;
      EXPECT_EQ(flat.grad().sizes(), flat.sizes());
      // Every parameter of every unit takes part (the image included).
      for (const auto& p : m.layout()[u].params) {
        EXPECT_GT(flat.grad().narrow(0, p.offset, p.numel).abs().sum().item<double>(), 0)
            << p.name << (tied ? " tied" : " untied");
      }
    }
  }
}

}  // namespace
}  // namespace muse::model
