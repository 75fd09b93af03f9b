#include "formats/model_source.h"

#include <ATen/core/grad_mode.h>

#include "config/schema.h"
#include "formats/hf_config.h"

namespace muse::formats {

std::filesystem::path resolve_init_from(const std::string& from, const std::string& key) {
  if (from.starts_with("hf:")) {
    throw config::ConfigError(key, "'" + from + "' is Hugging Face weights, not a muse-train " +
                                       "checkpoint (only init_from and aggregate.solver read hf:)");
  }
  try {
    return checkpoints::resolve_checkpoint(from);
  } catch (const checkpoints::CheckpointError& e) {
    throw config::ConfigError(key, e.what());
  }
}

HfWeights open_hf(const std::string& from, const std::string& key, const model::ModelConfig& cfg) {
  try {
    return HfWeights(from.substr(3), cfg);
  } catch (const checkpoints::CheckpointError& e) {
    throw config::ConfigError(key, e.what());
  }
}

model::Model load_model(const checkpoints::Checkpoint& ckpt, uint64_t seed, at::Device device) {
  model::Model m(ckpt.model(), seed, device);
  at::NoGradGuard no_grad;
  for (size_t u = 0; u < m.layout().size(); ++u)
    ckpt.read(checkpoints::unit_tensor_name(m.layout()[u].name, "param"), 0, m.flat_params()[u]);
  return m;
}

model::Model load_model_from(const std::string& from, const std::string& key,
                             const model::ModelConfig& cfg, uint64_t seed, at::Device device) {
  if (!from.starts_with("hf:"))
    return load_model(checkpoints::Checkpoint(resolve_init_from(from, key)), seed, device);
  // The directory's own architecture, with the run's image projector.
  const std::filesystem::path config_path = std::filesystem::path(from.substr(3)) / "config.json";
  model::ModelConfig theirs;
  try {
    theirs = hf_model_config(config_path, read_hf_config(config_path), cfg);
  } catch (const checkpoints::CheckpointError& e) {
    throw config::ConfigError(key, e.what());
  }
  const HfWeights hf = open_hf(from, key, theirs);
  model::Model m(theirs, seed, device);
  at::NoGradGuard no_grad;
  for (size_t u = 0; u < m.layout().size(); ++u)
    hf.read_unit(m.layout()[u], 0, m.flat_params()[u]);
  return m;
}

}  // namespace muse::formats
