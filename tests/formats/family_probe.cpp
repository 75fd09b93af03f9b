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
#include "model/generate.h"

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
    at::NoGradGuard no_grad;
    const at::Tensor logits =
        m.forward({.tokens = at::tensor(tokens, at::kLong).unsqueeze(0)}).squeeze(0).contiguous();
    muse::model::GenerateOptions options;
    options.sampling.temperature = 0;
    const auto g = muse::model::generate(
        m, {{.tokens = tokens, .max_new_tokens = std::stoll(argv[3])}}, options);
    nlohmann::json out;
    out["family"] = m.config().family;
    out["tokens"] = tokens;
    std::vector<std::vector<float>> rows;
    for (int64_t t = 0; t < logits.size(0); ++t) {
      const at::Tensor row = logits[t];
      rows.emplace_back(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
    }
    out["logits"] = rows;
    out["greedy"] = g.front().tokens;
    std::cout << out.dump() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
