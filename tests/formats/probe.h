// Shared by the probes (export_probe, family_probe): muse-train's forward and
// greedy continuation of a prompt, as the JSON the Python checks read.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "model/generate.h"
#include "model/model.h"

namespace muse::testing {

// {"tokens", "logits" (every position, fp32), "greedy" (up to `new_tokens`,
// ending at any of `stop_tokens`)}.
inline nlohmann::json probe_json(const model::Model& m, const std::vector<int64_t>& tokens,
                                 int64_t new_tokens, const std::vector<int64_t>& stop_tokens) {
  at::NoGradGuard no_grad;
  const at::Tensor logits =
      m.forward({.tokens = at::tensor(tokens, at::kLong).unsqueeze(0)}).squeeze(0).contiguous();
  model::GenerateOptions options;
  options.sampling.temperature = 0;
  options.stop_tokens = stop_tokens;
  const auto g = model::generate(m, {{.tokens = tokens, .max_new_tokens = new_tokens}}, options);
  std::vector<std::vector<float>> rows;
  for (int64_t t = 0; t < logits.size(0); ++t) {
    const at::Tensor row = logits[t];
    rows.emplace_back(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
  }
  return {{"tokens", tokens}, {"logits", rows}, {"greedy", g.front().tokens}};
}

}  // namespace muse::testing
