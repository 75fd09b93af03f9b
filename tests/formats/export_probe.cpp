// Test tool: muse-train's own forward and greedy generation of a model, as
// JSON, for comparison with an exported copy loaded elsewhere.
//   export_probe MODEL CONFIG_CHECKPOINT TOKENIZER TEXT
// MODEL is a checkpoint or run directory, or hf:DIR (read with the model
// config of CONFIG_CHECKPOINT). Prints {"tokens", "logits" (every position,
// fp32), "greedy" (32 tokens, stopping at end-of-text)}.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "checkpoints/checkpoint.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "formats/model_source.h"
#include "tests/formats/probe.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: export_probe MODEL CONFIG_CHECKPOINT TOKENIZER TEXT\n");
    return 2;
  }
  try {
    namespace mt = muse::formats;
    const muse::checkpoints::Checkpoint config_ckpt(mt::resolve_init_from(argv[2]));
    const muse::model::Model m =
        mt::load_model_from(argv[1], "MODEL", config_ckpt.model(), 0, at::kCPU);
    const muse::data::Tokenizer tokenizer = muse::data::Tokenizer::load(argv[3]);
    const std::vector<int32_t> ids = muse::data::encode_prompt(tokenizer, argv[4]);
    const std::vector<int64_t> tokens(ids.begin(), ids.end());
    const nlohmann::json out =
        muse::testing::probe_json(m, tokens, 32, {tokenizer.special_id(muse::data::kEndOfText)});
    std::cout << out.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
