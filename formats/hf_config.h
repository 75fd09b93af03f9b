// A Hugging Face directory's config.json, read as muse's model config: the
// text family from "architectures", every key of that family's table
// (model/family.h) in transformers 4 form (rope_theta, rope_scaling) or 5
// form (rope_parameters), and the checks of a run's model config against it.
// docs/models.md lists what each family reads.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/model_config.h"

namespace muse::formats {

// config.json's rope_scaling for model.rope_*: null, or the object
// transformers reads ({"rope_type": "llama3", "factor": 8, ...}).
nlohmann::json rope_scaling_json(const model::ModelConfig& cfg);

// config.json at `path`, with transformers 5's rope_parameters turned into
// the rope_theta and rope_scaling keys of the family tables. Throws
// checkpoints::CheckpointError naming the file.
nlohmann::json read_hf_config(const std::filesystem::path& path);

// The model `config` (read_hf_config of `path`) describes: model.family from
// its architecture and every model key of the family table; the fields
// config.json has no counterpart for (the image projector, init_std) are
// `base`'s. Throws checkpoints::CheckpointError naming the file and key (an
// unknown architecture, a rope type other than linear or llama3, a value
// the model config refuses).
model::ModelConfig hf_model_config(const std::filesystem::path& path, const nlohmann::json& config,
                                   const model::ModelConfig& base);

// Checks `config` against the model config `m`, key by key as m's family
// table lists them, and that its architecture is m's family. Throws
// checkpoints::CheckpointError naming the file and the key.
void check_hf_config(const std::filesystem::path& path, const nlohmann::json& config,
                     const model::ModelConfig& m);

}  // namespace muse::formats
