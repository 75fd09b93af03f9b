// Exporting a muse-train checkpoint (any stage, any world size) to the files
// inference engines load: a Hugging Face directory (LlamaForCausalLM
// safetensors, config, tokenizer; the image projector beside it) and GGUF v3
// for llama.cpp. Tensors are read from the checkpoint and written one at a
// time, so the model is never held twice. docs/export.md describes the
// layouts.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "data/token_roles.h"
#include "model/model.h"

namespace muse::formats {

struct ExportOptions {
  at::ScalarType dtype = at::kFloat;  // kFloat, kHalf or kBFloat16
  std::filesystem::path tokenizer;    // the tokenizer.json the model was trained with
  data::TokenRolesConfig tokens;      // the roles of its tokens (the run's data.tokens)
  // HF: above this many bytes of text-backbone tensors, model-0000i-of-0000n
  // shards and model.safetensors.index.json.
  int64_t max_shard_bytes = 5'000'000'000;
};

// What an export reads its tensors from: a muse-train checkpoint (one tensor
// at a time), or a whole model in memory (a Hugging Face directory read with
// hf:DIR). Either must outlive the source.
class ExportSource {
 public:
  static ExportSource checkpoint(const checkpoints::Checkpoint& ckpt);
  static ExportSource in_memory(const model::Model& model, std::string name);

  const model::ModelConfig& config() const { return *config_; }
  const std::string& name() const { return name_; }  // errors and muse_config.json name it
  int64_t step() const { return step_; }
  // The parameter `p` of unit `unit`, fp32 in its shape.
  at::Tensor read(const std::string& unit, const model::ParamSpec& p) const;

 private:
  const model::ModelConfig* config_ = nullptr;
  const checkpoints::Checkpoint* checkpoint_ = nullptr;
  const model::Model* model_ = nullptr;
  std::string name_;
  int64_t step_ = 0;
};

struct ExportSummary {
  int64_t tensors = 0;
  int64_t bytes = 0;  // tensor data written
  std::vector<std::filesystem::path> files;
};

// Writes the Hugging Face directory `out`: config.json, model.safetensors (or
// shards with an index), multi_modal_projector.safetensors, muse_config.json,
// tokenizer.json, tokenizer_config.json and generation_config.json. It is
// built as OUT.tmp and renamed over `out` when complete. Throws
// checkpoints::CheckpointError naming the file at fault.
ExportSummary export_hf(const ExportSource& source, const std::filesystem::path& out,
                        const ExportOptions& options);

// Writes `out` as a GGUF v3 file for llama.cpp's llama architecture, the
// tokenizer embedded; norms stay F32, q/k rows are permuted to GGML's
// interleaved rotary pairs. Throws checkpoints::CheckpointError.
ExportSummary export_gguf(const ExportSource& source, const std::filesystem::path& out,
                          const ExportOptions& options);

// Rows of a q or k projection (n_heads * head_dim, C) reordered from the
// half-split rotary layout (HF, muse-train) to interleaved pairs (Meta,
// GGML): GGUF row h*D + 2i + c = HF row h*D + c*D/2 + i.
at::Tensor interleave_rotary_rows(const at::Tensor& w, int64_t n_heads);

}  // namespace muse::formats
