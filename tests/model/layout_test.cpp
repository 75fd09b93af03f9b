// Unit layouts, parameter names, parameter counts and FLOPs.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "model/layout.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace muse::model {
namespace {

std::vector<ModelConfig> configs_to_check() {
  std::vector<ModelConfig> out;
  for (const auto& name : preset_names())
    out.push_back(preset_config(name));
  ModelConfig untied_tiny;
  untied_tiny.tie_embeddings = false;
  out.push_back(untied_tiny);
  return out;
}

// The parameter count written out by hand from the architecture.
int64_t hand_count(const ModelConfig& c) {
  const int64_t C = c.dim, V = c.vocab_size, F = c.ffn_hidden, D = c.dim / c.n_heads;
  const int64_t np = (c.image_size / c.patch_size) * (c.image_size / c.patch_size);
  const int64_t embed = V * C + C * c.patch_size * c.patch_size * c.image_channels + C + np * C;
  const int64_t attn = C * c.n_heads * D + 2 * C * c.n_kv_heads * D + c.n_heads * D * C;
  const int64_t block = 2 * C + attn + 3 * C * F;
  const int64_t head = C + (c.tie_embeddings ? 0 : V * C);
  return embed + c.n_layers * block + head;
}

TEST(Layout, UnitsAreEmbedBlocksHead) {
  const ModelConfig cfg;
  const auto units = model_layout(cfg);
  ASSERT_EQ(static_cast<int64_t>(units.size()), cfg.n_layers + 2);
  EXPECT_EQ(units[kEmbedUnit].name, "embed");
  for (int64_t il = 0; il < cfg.n_layers; ++il)
    EXPECT_EQ(units[block_unit(il)].name, "block." + std::to_string(il));
  EXPECT_EQ(units[head_unit(cfg)].name, "head");
  EXPECT_EQ(head_unit(cfg), static_cast<int64_t>(units.size()) - 1);
}

TEST(Layout, OffsetsAreContiguousAndNumelsAddUp) {
  for (const auto& cfg : configs_to_check()) {
    for (const auto& unit : model_layout(cfg)) {
      int64_t offset = 0;
      for (const auto& p : unit.params) {
        EXPECT_EQ(p.offset, offset) << cfg.preset << " " << p.name;
        int64_t numel = 1;
        for (int64_t s : p.shape)
          numel *= s;
        EXPECT_EQ(p.numel, numel) << p.name;
        offset += p.numel;
      }
      EXPECT_EQ(unit.numel, offset) << unit.name;
    }
  }
}

TEST(Layout, NamesAreUniqueAndHuggingFaceStyle) {
  const ModelConfig cfg;
  std::set<std::string> names;
  size_t n = 0;
  for (const auto& unit : model_layout(cfg)) {
    for (const auto& p : unit.params) {
      names.insert(p.name);
      ++n;
    }
  }
  EXPECT_EQ(names.size(), n);
  for (const char* expected :
       {"model.embed_tokens.weight", "multi_modal_projector.patch_proj.weight",
        "multi_modal_projector.patch_proj.bias", "multi_modal_projector.patch_pos",
        "model.layers.0.input_layernorm.weight", "model.layers.3.self_attn.q_proj.weight",
        "model.layers.3.self_attn.k_proj.weight", "model.layers.3.self_attn.v_proj.weight",
        "model.layers.3.self_attn.o_proj.weight", "model.layers.2.post_attention_layernorm.weight",
        "model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight",
        "model.layers.1.mlp.down_proj.weight", "model.norm.weight"}) {
    EXPECT_TRUE(names.count(expected)) << expected;
  }
  EXPECT_EQ(param_name(ParamId::kAttnQ, 12), "model.layers.12.self_attn.q_proj.weight");
}

TEST(Layout, ShapesFollowTheLinearConvention) {
  ModelConfig cfg;
  cfg.tie_embeddings = false;
  const auto units = model_layout(cfg);
  const auto& block = units[block_unit(1)];
  using Shape = std::vector<int64_t>;
  EXPECT_EQ(block.param(ParamId::kAttnQ).shape, (Shape{128, 128}));
  EXPECT_EQ(block.param(ParamId::kAttnK).shape, (Shape{64, 128}));  // 2 kv heads of 32
  EXPECT_EQ(block.param(ParamId::kAttnOut).shape, (Shape{128, 128}));
  EXPECT_EQ(block.param(ParamId::kFfnGate).shape, (Shape{384, 128}));
  EXPECT_EQ(block.param(ParamId::kFfnDown).shape, (Shape{128, 384}));
  EXPECT_EQ(units[kEmbedUnit].param(ParamId::kPatchProjWeight).shape, (Shape{128, 16}));
  EXPECT_EQ(units[kEmbedUnit].param(ParamId::kPatchPos).shape, (Shape{4, 128}));
  EXPECT_EQ(units[head_unit(cfg)].param(ParamId::kOutput).shape, (Shape{4096, 128}));
}

TEST(Layout, TiedHeadHasNoOutputWeight) {
  ModelConfig cfg;
  cfg.tie_embeddings = true;
  const auto tied = model_layout(cfg).back();
  ASSERT_EQ(tied.params.size(), 1u);
  EXPECT_EQ(tied.params[0].name, "model.norm.weight");
  EXPECT_THROW(tied.param(ParamId::kOutput), std::out_of_range);
  cfg.tie_embeddings = false;
  const auto untied = model_layout(cfg).back();
  ASSERT_EQ(untied.params.size(), 2u);
  EXPECT_EQ(untied.params[1].name, "lm_head.weight");
  EXPECT_EQ(untied.numel, cfg.dim + cfg.vocab_size * cfg.dim);
}

// The block's parameter names under `family`, in layout order.
std::vector<std::string> block_names(const std::string& family, int64_t head_dim = 0) {
  ModelConfig cfg;
  cfg.family = family;
  cfg.head_dim_override = head_dim;
  const std::vector<UnitLayout> units = model_layout(cfg);
  std::vector<std::string> names;
  for (const auto& p : units[block_unit(0)].params)
    names.push_back(p.name);
  return names;
}

TEST(Layout, FamiliesAddTheirOptionalRows) {
  const std::vector<std::string> llama = block_names("llama");
  EXPECT_EQ(block_names("mistral"), llama);
  const std::vector<std::string> qwen2 = block_names("qwen2");
  ASSERT_EQ(qwen2.size(), llama.size() + 3);
  EXPECT_EQ(qwen2[4], "model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(qwen2[6], "model.layers.0.self_attn.v_proj.bias");
  const std::vector<std::string> qwen3 = block_names("qwen3", 48);
  ASSERT_EQ(qwen3.size(), llama.size() + 2);
  EXPECT_EQ(qwen3[4], "model.layers.0.self_attn.q_norm.weight");
  EXPECT_EQ(qwen3[5], "model.layers.0.self_attn.k_norm.weight");
}

TEST(Layout, HeadDimSizesTheAttentionNotTheWidth) {
  ModelConfig cfg;  // width 128, 4 heads, 2 kv heads
  cfg.family = "qwen3";
  cfg.head_dim_override = 48;
  const UnitLayout block = model_layout(cfg)[block_unit(0)];
  EXPECT_EQ(block.param(ParamId::kAttnQ).shape, (std::vector<int64_t>{4 * 48, 128}));
  EXPECT_EQ(block.param(ParamId::kAttnK).shape, (std::vector<int64_t>{2 * 48, 128}));
  EXPECT_EQ(block.param(ParamId::kAttnOut).shape, (std::vector<int64_t>{128, 4 * 48}));
  EXPECT_EQ(block.param(ParamId::kAttnQNorm).shape, (std::vector<int64_t>{48}));
  EXPECT_FALSE(block.has(ParamId::kAttnQBias));
  // Biases start at zero and norm gains at one, as transformers starts them.
  const at::Tensor flat = init_unit(cfg, block, block_unit(0), 7);
  EXPECT_TRUE(param_view(block, flat, ParamId::kAttnKNorm).eq(1).all().item<bool>());
}

TEST(Layout, OnlyMatricesDecay) {
  for (const auto& unit : model_layout(ModelConfig{})) {
    for (const auto& p : unit.params)
      EXPECT_EQ(p.weight_decay, p.shape.size() == 2) << p.name;
  }
}

TEST(ParamCount, IsTheSumOfUnitsAndTheHandFormula) {
  for (const auto& cfg : configs_to_check()) {
    int64_t sum = 0;
    for (const auto& unit : model_layout(cfg))
      sum += unit.numel;
    EXPECT_EQ(param_count(cfg), sum) << cfg.preset;
    EXPECT_EQ(param_count(cfg), hand_count(cfg)) << cfg.preset;
  }
}

// Parameters of the image input: patch projection (weight, bias) and positions.
int64_t image_params(const ModelConfig& c) {
  return c.patch_dim() * c.dim + c.dim + c.n_patches() * c.dim;
}

TEST(ParamCount, PresetSizes) {
  EXPECT_EQ(param_count(preset_config("tiny")), 1314560);
  const int64_t small = param_count(preset_config("small"));
  EXPECT_GE(small, 25'000'000);
  EXPECT_LE(small, 50'000'000);
  // The text parameters of Llama-3.2-1B and Llama-3-8B (their safetensors' sizes).
  const ModelConfig b1 = preset_config("1b"), b8 = preset_config("8b");
  EXPECT_EQ(param_count(b1) - image_params(b1), 1'235'814'400);
  EXPECT_EQ(param_count(b8) - image_params(b8), 8'030'261'248);
}

TEST(Flops, SixNPlusAttention) {
  ModelConfig c;
  c.tie_embeddings = false;
  const int64_t C = c.dim, V = c.vocab_size, F = c.ffn_hidden, D = c.head_dim();
  const int64_t T = 256, L = c.n_layers, H = c.n_heads, KV = c.n_kv_heads;
  // Matrices multiplied per token: attention and MLP projections, the patch
  // projection and the output head; plus the (negligible) norm gains and bias.
  const int64_t n = L * (C * H * D + 2 * C * KV * D + H * D * C + 3 * C * F + 2 * C) +
                    C * c.patch_dim() + C + C + V * C;
  EXPECT_EQ(flops_per_token(c, T), 6 * n + 12 * L * H * D * T);
  c.tie_embeddings = true;  // the tied head still multiplies
  EXPECT_EQ(flops_per_token(c, T), 6 * n + 12 * L * H * D * T);
}

}  // namespace
}  // namespace muse::model
