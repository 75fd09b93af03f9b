// The whole model in one process: owns one flat fp32 buffer per unit (leaf
// tensors with requires_grad, so backward fills one flat gradient per unit)
// and chains the unit functions of forward.h. Sharded training (FSDP) uses the
// same layout and unit functions with its own buffers instead.
//
// Shapes: B batch, T time, V vocab.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "model/forward.h"
#include "model/layout.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace muse::model {

class Model {
 public:
  // Validates `cfg` (config::ConfigError) and initialises every unit with
  // init_unit(cfg, ..., seed): the same weights for the same (cfg, seed).
  Model(ModelConfig cfg, uint64_t seed, at::Device device = at::kCPU);

  const ModelConfig& config() const { return cfg_; }
  const std::vector<UnitLayout>& layout() const { return layout_; }
  // One (numel,) fp32 leaf per unit, in layout order. Write into them (under
  // at::NoGradGuard) to load weights; after backward, .grad() of each is the
  // unit's flat gradient.
  const std::vector<at::Tensor>& flat_params() const { return flat_; }

  // Views into the flat buffers, built afresh on each call.
  EmbedWeights embed_weights() const;
  BlockWeights block_weights(int64_t layer) const;
  HeadWeights head_weights() const;

  // (B, T, V) logits. Throws ModelError for inputs that do not fit.
  at::Tensor forward(const Inputs& in) const;
  // Mean next-token cross-entropy over the counted targets (B, T) (see
  // text_loss); 0 when none counts.
  at::Tensor loss(const Inputs& in, const at::Tensor& targets) const;

 private:
  ModelConfig cfg_;
  std::vector<UnitLayout> layout_;
  std::vector<at::Tensor> flat_;  // [n_layers + 2], each (layout_[u].numel,)
};

}  // namespace muse::model
