// Each unit's weights as a small struct of views into the unit's flat buffer
// (llm.c style): the forward functions read these, and gradients of the views
// land in the flat buffer's gradient. Also the seeded initialisation of a flat
// buffer, a pure function of (config, seed, unit).
//
// Shapes: C model width, V vocab, H heads, KV kv-heads, D head dim,
// F ffn hidden, P patch size, Ch image channels, Np patches per image.
#pragma once

#include <cstdint>
#include <functional>

#include <ATen/ATen.h>

#include "model/layout.h"
#include "model/model_config.h"

namespace muse::model {

struct EmbedWeights {
  at::Tensor tok_embed;          // (V, C)
  at::Tensor patch_proj_weight;  // (C, P*P*Ch)
  at::Tensor patch_proj_bias;    // (C)
  at::Tensor patch_pos;          // (Np, C)
};

struct BlockWeights {
  at::Tensor attn_norm;  // (C)
  at::Tensor wq;         // (H*D, C)
  at::Tensor wk;         // (KV*D, C)
  at::Tensor wv;         // (KV*D, C)
  // Optional rows (undefined when the family has none): q/k/v biases, and
  // per-head RMSNorm gains of q and k.
  at::Tensor bq;        // (H*D)
  at::Tensor bk;        // (KV*D)
  at::Tensor bv;        // (KV*D)
  at::Tensor q_norm;    // (D)
  at::Tensor k_norm;    // (D)
  at::Tensor wo;        // (C, H*D)
  at::Tensor ffn_norm;  // (C)
  at::Tensor w_gate;    // (F, C)
  at::Tensor w_up;      // (F, C)
  at::Tensor w_down;    // (C, F)
};

struct HeadWeights {
  at::Tensor norm;    // (C)
  at::Tensor output;  // (V, C): the head's own, or the embed unit's tok_embed when tied
};

// A view of parameter `id` in `flat` (numel,), shaped as the layout says.
at::Tensor param_view(const UnitLayout& unit, const at::Tensor& flat, ParamId id);

// What becomes of each parameter view before the forward reads it (FSDP makes
// autograd leaves of them); identity when empty.
using ViewFn = std::function<at::Tensor(const at::Tensor&)>;

EmbedWeights embed_weights(const UnitLayout& unit, const at::Tensor& flat, const ViewFn& as = {});
BlockWeights block_weights(const UnitLayout& unit, const at::Tensor& flat, const ViewFn& as = {});
// `tok_embed` (V, C) is the embed unit's token table, used as it is as the
// output projection when the head has none (tied embeddings); ignored
// otherwise.
HeadWeights head_weights(const UnitLayout& unit, const at::Tensor& flat,
                         const at::Tensor& tok_embed, const ViewFn& as = {});

// The initial flat buffer (numel,) fp32 on the CPU of `unit`, whose index in
// model_layout() is `unit_index`. Parameter j of unit u draws from its own
// generator seeded by (seed, u, j), so the values depend neither on how units
// are later sharded nor on the order in which units are initialised.
at::Tensor init_unit(const ModelConfig& cfg, const UnitLayout& unit, int64_t unit_index,
                     uint64_t seed);

}  // namespace muse::model
