// Reading a response: the answer it gives, whether that answer is right, and
// whether the response has the <think>...</think><answer>...</answer> shape.
// Pure string and token functions; every reward builds on them.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace muse::rewards {

enum class MatchMode {
  kExact,    // the trimmed strings are equal
  kNumeric,  // both are decimal numbers and equal to 1e-9 relative; else as kExact
  // The trimmed response begins with the trimmed, non-empty reference followed
  // by a non-alphanumeric character or the end: " seven." answers "seven",
  // " sevenfold" does not. No tags involved: for captions, which have none.
  kCaption,
};

// "exact", "numeric" or "caption"; throws std::invalid_argument for any other
// name (config choices reject those before this is reached).
MatchMode parse_match_mode(std::string_view name);

// Where a response states its answer: the forms real models write.
enum class AnswerForm {
  kTags,        // the last complete <answer>...</answer> pair (muse's format)
  kBoxed,       // the last \boxed{...}, braces balanced (math models, R1-distilled)
  kHashes,      // the rest of the line after the last "####" (GSM8K), a final '.' dropped
  kLastNumber,  // the last decimal number in the text ("1,000", "-3.5")
};

// "tags", "boxed", "hashes" or "last_number"; throws std::invalid_argument
// for any other name (config choices reject those first).
AnswerForm parse_answer_form(std::string_view name);

// How a response is checked: where its answer is read (the first of `forms`
// that finds one) and how that answer is compared with the reference.
struct AnswerRule {
  MatchMode match = MatchMode::kNumeric;
  std::vector<AnswerForm> forms = {AnswerForm::kTags};
};

// An answer and where the response states it: `text` is the bytes
// [offset, offset + text.size()) of the response.
struct LocatedAnswer {
  std::string text;
  size_t offset = 0;
};

// The answer of `text` in the first of `forms` it holds, trimmed, with its
// byte offset in `text`; nullopt when it holds none.
std::optional<LocatedAnswer> locate_answer(std::string_view text,
                                           std::span<const AnswerForm> forms);
// locate_answer's answer without its offset.
std::optional<std::string> extract_answer(std::string_view text, std::span<const AnswerForm> forms);
// The text inside the last complete <answer>...</answer> pair of `text`,
// trimmed; nullopt when there is no complete pair.
std::optional<std::string> extract_answer(std::string_view text);

// Whether `got` answers `reference`. kNumeric reads both as decimal numbers
// (optional sign, digits with optional "1,000" thousands commas, optional
// fraction, surrounding whitespace) and accepts |got - reference| <=
// 1e-9 * max(1, |reference|); when either is not such a number it compares
// like kExact. kCaption applies the caption rule to `got` as the response, so
// unlike the others it is not symmetric.
bool answers_match(std::string_view got, std::string_view reference, MatchMode mode);

// Whether a whole response answers `reference`: the one checker behind the RL
// reward and every reported accuracy. kExact and kNumeric read the answer in
// `rule.forms` (false without one) and compare it with answers_match;
// kCaption applies the caption rule to the whole text.
bool answer_correct(std::string_view response_text, std::string_view reference,
                    const AnswerRule& rule);

// True when `text`, trimmed, is exactly one <think>...</think> block, optional
// whitespace, then one <answer>...</answer> block with a non-blank answer, and
// nothing else (no tag appears twice).
bool well_formatted(std::string_view text);

}  // namespace muse::rewards
