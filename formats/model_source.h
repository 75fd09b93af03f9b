// Where a whole model comes from, for the tools that only read one
// (muse-generate, muse-export, an RL stage's reference or solver): a
// muse-train checkpoint or run directory, or a Hugging Face directory.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "checkpoints/checkpoint.h"
#include "formats/hf_weights.h"
#include "model/model.h"
#include "model/model_config.h"

namespace muse::formats {

// A config value or option naming a muse-train checkpoint (`key`:
// init_from, --checkpoint ...) resolved to a checkpoint directory; hf: and
// unreadable paths are config::ConfigError naming `key`.
std::filesystem::path resolve_init_from(const std::string& from,
                                        const std::string& key = "init_from");

// The Hugging Face directory of "hf:DIR", checked against `cfg`; a bad one
// is config::ConfigError naming `key` (the message names the file and tensor).
HfWeights open_hf(const std::string& from, const std::string& key, const model::ModelConfig& cfg);

// The whole model saved in `ckpt` (by any number of ranks), in this process,
// with the checkpoint's model config.
model::Model load_model(const checkpoints::Checkpoint& ckpt, uint64_t seed, at::Device device);

// The whole model `from` names, in this process: a checkpoint or run
// directory (with its own model config), or hf:DIR (a Hugging Face directory
// of any text family, with its config.json's architecture and `cfg`'s image
// projector, which keeps its initialisation unless DIR holds one). Errors
// are config::ConfigError naming `key` or checkpoints::CheckpointError
// naming the file.
model::Model load_model_from(const std::string& from, const std::string& key,
                             const model::ModelConfig& cfg, uint64_t seed, at::Device device);

}  // namespace muse::formats
