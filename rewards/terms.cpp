#include "rewards/terms.h"

#include <string>
#include <unordered_set>

namespace muse::rewards {

bool is_correct(const Response& response, const AnswerRule& rule) {
  return answer_correct(response.text, response.answer, rule);
}

std::vector<double> CorrectnessReward::score(std::span<const Response> group,
                                             const Context& /*ctx*/) const {
  std::vector<double> out;
  for (const Response& r : group)
    out.push_back(is_correct(r, rule_) ? 1.0 : 0.0);
  return out;
}

std::vector<double> FormatReward::score(std::span<const Response> group,
                                        const Context& /*ctx*/) const {
  std::vector<double> out;
  for (const Response& r : group)
    out.push_back(well_formatted(r.text) ? 1.0 : 0.0);
  return out;
}

double repetition_penalty(std::string_view text, int64_t ngram, double max_penalty) {
  std::vector<std::string> words;
  std::string word;
  for (const char c : text) {
    if (c == ' ' || (c >= '\t' && c <= '\r')) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  const auto n = static_cast<size_t>(ngram);
  if (words.size() < n) return 0.0;

  // Words hold no whitespace, so joining with a space keeps n-grams distinct.
  std::unordered_set<std::string> distinct;
  const size_t total = words.size() - n + 1;
  for (size_t i = 0; i < total; ++i) {
    std::string key = words[i];
    for (size_t k = 1; k < n; ++k)
      key += ' ' + words[i + k];
    distinct.insert(std::move(key));
  }
  return max_penalty * (1.0 - static_cast<double>(distinct.size()) / static_cast<double>(total));
}

std::vector<double> RepetitionReward::score(std::span<const Response> group,
                                            const Context& /*ctx*/) const {
  std::vector<double> out;
  for (const Response& r : group)
    out.push_back(repetition_penalty(r.text, ngram_, max_penalty_));
  return out;
}

}  // namespace muse::rewards
