// Voting over several answers to one problem: the majority answer, how many
// different answers there are, and whether the majority is wrong. Answers are
// compared as the reward's verifier compares them (rewards/verify.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rewards/verify.h"

namespace muse::inference {

// The answer most candidates give, answers compared with answers_match in
// `mode`; a tie goes to the answer that appears first. Candidates without an
// answer do not vote; none at all -> answer is nullopt.
struct Vote {
  std::optional<std::string> answer;
  int64_t votes = 0;
};
Vote majority_vote(const std::vector<std::optional<std::string>>& answers, rewards::MatchMode mode);

// How many different answers `answers` hold (compared as majority_vote
// compares them; a missing answer is none): the diversity of a candidate set.
int64_t distinct_answers(const std::vector<std::optional<std::string>>& answers,
                         rewards::MatchMode mode);

// AggLM: a candidate set is hard when its majority answer is wrong (or it
// has none), easy otherwise.
bool is_hard(const Vote& vote, std::string_view reference, rewards::MatchMode mode);

}  // namespace muse::inference
