// libFuzzer target: a Hugging Face config.json read as muse's model config
// (formats/hf_config.h), as `init_from: hf:DIR` reads it: the family from
// "architectures", every key of its table, transformers 4's rope_scaling or
// 5's rope_parameters, the model config's own validation, then the check of
// the file against the model config it gave. Any input must give a model
// config or raise CheckpointError, never crash.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "checkpoints/checkpoint_error.h"
#include "formats/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      "/tmp/muse_fuzz_hf_config_" + std::to_string(::getpid()) + ".json";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const nlohmann::json config = muse::formats::read_hf_config(path);
    const muse::model::ModelConfig model = muse::formats::hf_model_config(path, config, {});
    muse::formats::check_hf_config(path, config, model);
  } catch (const muse::checkpoints::CheckpointError&) {
  }
  return 0;
}
