// Where every parameter lives: the model is a list of units (embed, one per
// transformer block, head), and each unit's parameters are one flat fp32
// buffer. A UnitLayout is pure data (names, shapes, offsets) made from the
// family tables (family.h), so sharding, checkpointing and export are
// arithmetic on it.
//
// Shapes: C model width, V vocab, H heads, KV kv-heads, D head dim,
// F ffn hidden, P patch size, Ch image channels, Np patches per image.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/family.h"
#include "model/model_config.h"

namespace muse::model {

// The stored (Hugging Face) name of a parameter; `layer` fills "{i}" in
// block parameters.
std::string param_name(ParamId id, int64_t layer = 0);

// One parameter inside its unit's flat buffer: elements [offset, offset+numel).
struct ParamSpec {
  ParamId id;
  const ParamRow* row;  // [not null] its family table row
  int64_t layer;        // the block's layer index; 0 outside blocks
  std::string name;     // the Hugging Face name
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
  // Whether the unit has a parameter of kind `id` (optional rows: biases, norms).
  bool has(ParamId id) const;
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
