// Reading a Hugging Face Llama directory (what export_hf writes, or another
// Llama-architecture checkpoint of the same shape) to start training from it:
// `init_from: hf:DIR`. docs/export.md lists what is checked.
#pragma once

#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "model/layout.h"
#include "model/model_config.h"

namespace muse::formats {

class HfWeights {
 public:
  // Reads DIR/config.json and checks it against `model` (every field that
  // fixes the shape or the function: sizes, heads, tie, rope_theta,
  // rms_norm_eps, no biases or rope scaling), opens and validates the
  // safetensors files (model.safetensors or model.safetensors.index.json and
  // its shards; multi_modal_projector.safetensors when present) and checks
  // that every parameter is there with its shape. Throws checkpoints::CheckpointError
  // naming the file and the key or tensor.
  HfWeights(std::filesystem::path dir, const model::ModelConfig& model);
  ~HfWeights();
  HfWeights(HfWeights&&) noexcept;

  const std::filesystem::path& dir() const;
  // Whether the image projector was found (else it keeps its initialisation).
  bool has_projector() const;
  // Elements [begin, begin + out.numel()) of the unit's flat buffer, as the
  // model lays them out, into `out` (fp32). Projector parameters the
  // directory lacks are left as they are in `out`.
  void read_unit(const model::UnitLayout& unit, int64_t begin, const at::Tensor& out) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace muse::formats
