#include "inference/voting.h"

#include <algorithm>

namespace muse::inference {
namespace {

// Answers grouped by answers_match, in order of first appearance.
std::vector<Vote> answer_clusters(const std::vector<std::optional<std::string>>& answers,
                                  rewards::MatchMode mode) {
  std::vector<Vote> clusters;
  for (const std::optional<std::string>& a : answers) {
    if (!a) continue;
    const auto same = std::find_if(clusters.begin(), clusters.end(), [&](const Vote& c) {
      return rewards::answers_match(*a, *c.answer, mode);
    });
    if (same == clusters.end()) {
      clusters.push_back({.answer = *a, .votes = 1});
    } else {
      ++same->votes;
    }
  }
  return clusters;
}

}  // namespace

int64_t distinct_answers(const std::vector<std::optional<std::string>>& answers,
                         rewards::MatchMode mode) {
  return static_cast<int64_t>(answer_clusters(answers, mode).size());
}

Vote majority_vote(const std::vector<std::optional<std::string>>& answers,
                   rewards::MatchMode mode) {
  const std::vector<Vote> clusters = answer_clusters(answers, mode);
  Vote best;
  for (const Vote& c : clusters)
    if (c.votes > best.votes) best = c;  // strictly more: the earlier one wins a tie
  return best;
}

bool is_hard(const Vote& vote, std::string_view reference, rewards::MatchMode mode) {
  return !vote.answer || !rewards::answers_match(*vote.answer, reference, mode);
}

}  // namespace muse::inference
