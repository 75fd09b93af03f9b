// Where every parameter lives: the model is a list of units (embed, one per
// transformer block, head), and each unit's parameters are one flat fp32
// buffer. A UnitLayout is pure data (names, shapes, offsets), so sharding,
// checkpointing and export are arithmetic on this table.
//
// Shapes: C model width, V vocab, H heads, KV kv-heads, D head dim,
// F ffn hidden, P patch size, Ch image channels, Np patches per image.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/model_config.h"

namespace muse::model {

// Every kind of parameter the model has.
enum class ParamId {
  kTokEmbed,         // (V, C)
  kPatchProjWeight,  // (C, P*P*Ch)
  kPatchProjBias,    // (C)
  kPatchPos,         // (Np, C)
  kAttnNorm,         // (C)
  kAttnQ,            // (H*D, C)
  kAttnK,            // (KV*D, C)
  kAttnV,            // (KV*D, C)
  kAttnOut,          // (C, H*D)
  kFfnNorm,          // (C)
  kFfnGate,          // (F, C)
  kFfnUp,            // (F, C)
  kFfnDown,          // (C, F)
  kOutputNorm,       // (C)
  kOutput,           // (V, C), absent when tied
};

enum class ParamInit {
  kOnes,          // norm gains
  kZeros,         // biases
  kNormal,        // N(0, init_std)
  kNormalScaled,  // N(0, init_std / sqrt(2 * n_layers)): projections back into the residual stream
};

// The one table of parameter kinds: stored name (Hugging Face Llama names for
// the text backbone; "{i}" is the layer index), initialisation, and whether
// AdamW decays it (matrices yes; norms and biases no).
struct ParamKind {
  ParamId id;
  std::string_view name;
  ParamInit init;
  bool weight_decay;
};
inline constexpr ParamKind kParamKinds[] = {
    {ParamId::kTokEmbed, "model.embed_tokens.weight", ParamInit::kNormal, true},
    {ParamId::kPatchProjWeight, "multi_modal_projector.patch_proj.weight", ParamInit::kNormal,
     true},
    {ParamId::kPatchProjBias, "multi_modal_projector.patch_proj.bias", ParamInit::kZeros, false},
    {ParamId::kPatchPos, "multi_modal_projector.patch_pos", ParamInit::kNormal, true},
    {ParamId::kAttnNorm, "model.layers.{i}.input_layernorm.weight", ParamInit::kOnes, false},
    {ParamId::kAttnQ, "model.layers.{i}.self_attn.q_proj.weight", ParamInit::kNormal, true},
    {ParamId::kAttnK, "model.layers.{i}.self_attn.k_proj.weight", ParamInit::kNormal, true},
    {ParamId::kAttnV, "model.layers.{i}.self_attn.v_proj.weight", ParamInit::kNormal, true},
    {ParamId::kAttnOut, "model.layers.{i}.self_attn.o_proj.weight", ParamInit::kNormalScaled, true},
    {ParamId::kFfnNorm, "model.layers.{i}.post_attention_layernorm.weight", ParamInit::kOnes,
     false},
    {ParamId::kFfnGate, "model.layers.{i}.mlp.gate_proj.weight", ParamInit::kNormal, true},
    {ParamId::kFfnUp, "model.layers.{i}.mlp.up_proj.weight", ParamInit::kNormal, true},
    {ParamId::kFfnDown, "model.layers.{i}.mlp.down_proj.weight", ParamInit::kNormalScaled, true},
    {ParamId::kOutputNorm, "model.norm.weight", ParamInit::kOnes, false},
    {ParamId::kOutput, "lm_head.weight", ParamInit::kNormal, true},
};

const ParamKind& param_kind(ParamId id);

// The stored name of a parameter; `layer` fills "{i}" in block parameters.
std::string param_name(ParamId id, int64_t layer = 0);

// One parameter inside its unit's flat buffer: elements [offset, offset+numel).
struct ParamSpec {
  ParamId id;
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset;
  int64_t numel;
  bool weight_decay;
};

// One unit's flat buffer: its parameters back to back, no padding (shard
// padding is the sharding plan's business). numel = sum of params' numel.
struct UnitLayout {
  std::string name;  // "embed", "block.{i}" or "head"
  std::vector<ParamSpec> params = {};
  int64_t numel = 0;

  // The parameter of kind `id`; throws std::out_of_range when the unit has none.
  const ParamSpec& param(ParamId id) const;
};

// Unit indices: embed, then the blocks, then the head.
inline constexpr int64_t kEmbedUnit = 0;
inline int64_t block_unit(int64_t layer) {
  return 1 + layer;
}
inline int64_t head_unit(const ModelConfig& cfg) {
  return 1 + cfg.n_layers;
}

// The n_layers + 2 units of `cfg` in order. The head has no output weight when
// embeddings are tied (it uses the embed unit's token table).
std::vector<UnitLayout> model_layout(const ModelConfig& cfg);

// Total parameters (every unit's numel).
int64_t param_count(const ModelConfig& cfg);

// Training FLOPs per token (forward + backward) for sequences of `seq_len`
// tokens: 6 N + 12 L H D T (PaLM, Chowdhery et al. 2022, appendix B). N counts
// every parameter except the token and patch-position tables (lookups and
// additions, not multiplies); the output projection counts even when tied.
// The attention term counts all T keys, as PaLM does, although causal masking
// skips about half of them.
int64_t flops_per_token(const ModelConfig& cfg, int64_t seq_len);

}  // namespace muse::model
