// Test tool: a Hugging Face directory of any text family read with no
// model.* key (the architecture from its config.json), and muse-train's
// forward and greedy continuation of given token ids, as JSON.
//   family_probe MODEL IDS NEW_TOKENS
// MODEL is hf:DIR or a checkpoint or run directory; IDS is comma-separated.
// Prints {"family", "tokens", "logits" (every position, fp32), "greedy"
// (NEW_TOKENS tokens, no stop token)}.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "formats/model_source.h"
#include "tests/formats/probe.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: family_probe MODEL IDS NEW_TOKENS\n");
    return 2;
  }
  try {
    const muse::model::Model m =
        muse::formats::load_model_from(argv[1], "MODEL", muse::model::ModelConfig{}, 0, at::kCPU);
    std::vector<int64_t> tokens;
    std::stringstream ids(argv[2]);
    for (std::string id; std::getline(ids, id, ',');)
      tokens.push_back(std::stoll(id));
    nlohmann::json out = muse::testing::probe_json(m, tokens, std::stoll(argv[3]), {});
    out["family"] = m.config().family;
    std::cout << out.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
