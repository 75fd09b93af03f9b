// What the writer and the reader of checkpoints share (internal): file and
// directory names, the manifest's format tag, and the model config as JSON.
// docs/checkpoints.md documents the manifest these produce.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/model_config.h"

namespace muse::checkpoints::detail {

using Json = nlohmann::ordered_json;  // keeps keys in the order written

inline constexpr std::string_view kFormat = "muse-checkpoint";
inline constexpr int64_t kVersion = 1;
inline constexpr std::string_view kManifestFile = "manifest.json";
inline constexpr std::string_view kConfigFile = "config.yaml";
inline constexpr std::string_view kLatestFile = "LATEST";
inline constexpr std::string_view kCheckpointsDir = "checkpoints";

std::string step_dir_name(int64_t step);  // "step_00000042"
std::string rank_file_name(int rank);     // "rank_00003.bin"

// A directory entry of RUN/checkpoints named after a step: "step_00000042" is
// a checkpoint (complete when it holds a manifest); "step_00000042.SUFFIX"
// is a leftover of an interrupted save. Other names give nullopt.
struct StepEntry {
  int64_t step = 0;
  bool leftover = false;
};
std::optional<StepEntry> parse_step_entry(std::string_view name);

// Every field of the config, with its declared name and JSON type.
Json model_to_json(const model::ModelConfig& cfg);

// The inverse of model_to_json; throws CheckpointError "WHERE: model.KEY ..."
// for a missing key, a wrong type or an invalid config.
model::ModelConfig model_from_json(const Json& j, const std::string& where);

// model::model_layout(cfg) as JSON: per unit its name, numel and parameters
// (name, shape, offset, numel), so an exporter finds each parameter inside
// the tensor "UNIT/param".
Json units_to_json(const model::ModelConfig& cfg);

// The fields that fix the model's shape, as ("model.KEY", formatted value) in
// declaration order: every field except the preset name and init_std.
std::vector<std::pair<std::string, std::string>> architecture_fields(const model::ModelConfig& cfg);

}  // namespace muse::checkpoints::detail
