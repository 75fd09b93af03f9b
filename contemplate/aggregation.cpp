#include "contemplate/aggregation.h"

#include <algorithm>
#include <cmath>

#include "config/schema.h"
#include "config/splitmix64.h"
#include "config/utf8.h"

namespace muse::contemplate {
namespace {

constexpr std::string_view kProblemSlot = "{problem}";
constexpr std::string_view kSolutionsSlot = "{solutions}";
constexpr std::string_view kOwnSlot = "{own}";

size_t count_of(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string_view::npos;
       at = text.find(what, at + what.size()))
    ++n;
  return n;
}

std::string replace_all(std::string text, std::string_view what, std::string_view with) {
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + with.size()))
    text.replace(at, what.size(), with);
  return text;
}

std::string_view trimmed(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t\r\n") - begin + 1);
}

// A candidate as a prompt shows it: valid UTF-8 (a candidate cut at a token
// boundary may end inside a character, and prompts are stored as JSON text;
// '?' for a broken byte), no <image> markers, trimmed; an empty one reads
// "(no solution)".
std::string shown_candidate(std::string_view candidate) {
  const std::string text = replace_all(config::valid_utf8(candidate, "?"), "<image>", "");
  const std::string_view shown = trimmed(text);
  return shown.empty() ? "(no solution)" : std::string(shown);
}

// "\nSolution 1: <c1>\nSolution 2: <c2>...".
std::string numbered_solutions(const std::vector<std::string>& candidates) {
  std::string out;
  for (size_t i = 0; i < candidates.size(); ++i)
    out += "\nSolution " + std::to_string(i + 1) + ": " + shown_candidate(candidates[i]);
  return out;
}

// `t` with each slot replaced by its value. Every slot is located in the
// template before any is filled, so text inside a value is never taken for a
// slot. Slots absent from the template are skipped.
std::string fill_slots(std::string_view t,
                       std::vector<std::pair<std::string_view, std::string>> slots) {
  std::vector<std::pair<size_t, size_t>> at;  // (position in t, slot index)
  for (size_t i = 0; i < slots.size(); ++i)
    if (const size_t pos = t.find(slots[i].first); pos != std::string_view::npos)
      at.emplace_back(pos, i);
  std::sort(at.begin(), at.end());
  std::string out;
  size_t done = 0;
  for (const auto& [pos, i] : at) {
    out += t.substr(done, pos - done);
    out += slots[i].second;
    done = pos + slots[i].first.size();
  }
  out += t.substr(done);
  return out;
}

}  // namespace

CandidateView parse_candidate_view(const std::string& name) {
  if (name == "answer") return CandidateView::kAnswer;
  if (name == "full") return CandidateView::kFull;
  throw config::ConfigError("aggregate.candidates", "unknown candidate view '" + name + "'");
}

std::vector<int64_t> candidate_tokens(const data::Tokenizer& tokenizer,
                                      std::span<const int64_t> response, CandidateView view,
                                      int64_t max_tokens) {
  std::vector<int64_t> shown = view == CandidateView::kAnswer
                                   ? data::tokens_after_reasoning(tokenizer, response)
                                   : std::vector<int64_t>(response.begin(), response.end());
  shown.resize(std::min(shown.size(), static_cast<size_t>(std::max<int64_t>(max_tokens, 0))));
  return shown;
}

void check_template(std::string_view prompt_template, std::string_view key) {
  for (const std::string_view slot : {kProblemSlot, kSolutionsSlot}) {
    if (count_of(prompt_template, slot) != 1) {
      throw config::ConfigError(std::string(key),
                                "must hold " + std::string(slot) + " exactly once");
    }
  }
}

void check_refine_template(std::string_view prompt_template) {
  check_template(prompt_template, "aggregate.refine_template");
  if (count_of(prompt_template, kOwnSlot) > 1)
    throw config::ConfigError("aggregate.refine_template", "may hold {own} at most once");
}

std::string aggregator_prompt(std::string_view prompt_template, std::string_view problem,
                              const std::vector<std::string>& candidates) {
  check_template(prompt_template);
  return fill_slots(prompt_template, {{kProblemSlot, std::string(problem)},
                                      {kSolutionsSlot, numbered_solutions(candidates)}});
}

std::string refinement_prompt(std::string_view prompt_template, std::string_view problem,
                              const std::vector<std::string>& candidates, size_t own) {
  check_refine_template(prompt_template);
  if (count_of(prompt_template, kOwnSlot) == 0) {
    // The agent's own proposal is shown first, then the others.
    std::vector<std::string> ordered = {candidates[own]};
    for (size_t i = 0; i < candidates.size(); ++i)
      if (i != own) ordered.push_back(candidates[i]);
    return fill_slots(prompt_template, {{kProblemSlot, std::string(problem)},
                                        {kSolutionsSlot, numbered_solutions(ordered)}});
  }
  std::vector<std::string> others;
  for (size_t i = 0; i < candidates.size(); ++i)
    if (i != own) others.push_back(candidates[i]);
  return fill_slots(prompt_template, {{kProblemSlot, std::string(problem)},
                                      {kSolutionsSlot, numbered_solutions(others)},
                                      {kOwnSlot, shown_candidate(candidates[own])}});
}

std::vector<size_t> select_sets(const std::vector<bool>& hard, double easy_share, uint64_t seed) {
  std::vector<size_t> chosen, easy;
  for (size_t i = 0; i < hard.size(); ++i)
    (hard[i] ? chosen : easy).push_back(i);
  const auto n_easy =
      std::min(easy.size(),
               static_cast<size_t>(std::llround(easy_share * static_cast<double>(chosen.size()))));
  uint64_t state = seed;
  for (size_t i = 0; i < n_easy; ++i) {  // a partial Fisher-Yates draw
    state = config::mix_seed({state, i});
    std::swap(easy[i], easy[i + state % (easy.size() - i)]);
  }
  chosen.insert(chosen.end(), easy.begin(), easy.begin() + static_cast<std::ptrdiff_t>(n_easy));
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

}  // namespace muse::contemplate
