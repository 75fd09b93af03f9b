#include "rewards/verify.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace muse::rewards {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kAnswerOpen = "<answer>";
constexpr std::string_view kAnswerClose = "</answer>";
constexpr std::string_view kWhitespace = " \t\n\r\f\v";

std::string_view trim(std::string_view s) {
  const size_t begin = s.find_first_not_of(kWhitespace);
  if (begin == std::string_view::npos) return {};
  return s.substr(begin, s.find_last_not_of(kWhitespace) - begin + 1);
}

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The digits of an integer part, which is either plain digits or digits
// grouped in threes by commas ("1,234,567"); nullopt for anything else.
std::optional<std::string> whole_digits(std::string_view whole) {
  if (whole.find(',') == std::string_view::npos) {
    if (!all_digits(whole)) return std::nullopt;
    return std::string(whole);
  }
  std::string digits;
  size_t group_begin = 0;
  for (bool first = true;; first = false) {
    const size_t comma = whole.find(',', group_begin);
    const std::string_view group = whole.substr(group_begin, comma - group_begin);
    const bool size_ok = first ? (!group.empty() && group.size() <= 3) : group.size() == 3;
    if (!size_ok || !all_digits(group)) return std::nullopt;
    digits += group;
    if (comma == std::string_view::npos) return digits;
    group_begin = comma + 1;
  }
}

// "-1,234.5" -> -1234.5; nullopt unless the whole (trimmed) text is a decimal
// number as answers_match describes it.
std::optional<double> parse_decimal(std::string_view text) {
  std::string_view s = trim(text);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  const size_t dot = s.find('.');
  const std::string_view whole = s.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  if (dot != std::string_view::npos && (fraction.empty() || !all_digits(fraction)))
    return std::nullopt;
  if (whole.empty() && fraction.empty()) return std::nullopt;
  std::optional<std::string> digits = whole_digits(whole);
  if (!digits) return std::nullopt;
  std::string number = digits->empty() ? "0" : *digits;
  if (!fraction.empty()) number += "." + std::string(fraction);
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size()) return std::nullopt;
  return negative ? -value : value;
}

// ASCII only, so the result does not depend on the C locale; bytes of UTF-8
// sequences count as non-alphanumeric, as they do in the "C" locale.
bool ascii_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// MatchMode::kCaption.
bool caption_match(std::string_view response, std::string_view reference) {
  const std::string_view text = trim(response);
  const std::string_view ref = trim(reference);
  if (ref.empty() || !text.starts_with(ref)) return false;
  return text.size() == ref.size() || !ascii_alnum(text[ref.size()]);
}

// Bytes [begin, end) of a text: where an answer form found the answer.
struct ByteRange {
  size_t begin = 0, end = 0;
};

// `range` without the whitespace at either end.
ByteRange trimmed(std::string_view text, ByteRange range) {
  const auto space = [&](size_t i) { return kWhitespace.find(text[i]) != std::string_view::npos; };
  while (range.begin < range.end && space(range.begin))
    ++range.begin;
  while (range.end > range.begin && space(range.end - 1))
    --range.end;
  return range;
}

// The inside of the last complete <answer>...</answer> pair, trimmed.
std::optional<ByteRange> tags_answer(std::string_view text) {
  const size_t close = text.rfind(kAnswerClose);
  if (close == std::string_view::npos) return std::nullopt;
  const size_t open = text.rfind(kAnswerOpen, close);
  if (open == std::string_view::npos) return std::nullopt;
  return trimmed(text, {.begin = open + kAnswerOpen.size(), .end = close});
}

// The inside of the last \boxed{...} whose braces balance, trimmed.
std::optional<ByteRange> boxed_answer(std::string_view text) {
  constexpr std::string_view kBoxed = "\\boxed{";
  for (size_t at = text.rfind(kBoxed); at != std::string_view::npos;
       at = at == 0 ? std::string_view::npos : text.rfind(kBoxed, at - 1)) {
    const size_t begin = at + kBoxed.size();
    int depth = 1;
    for (size_t i = begin; i < text.size(); ++i) {
      depth += text[i] == '{' ? 1 : text[i] == '}' ? -1 : 0;
      if (depth == 0) return trimmed(text, {.begin = begin, .end = i});
    }
  }
  return std::nullopt;
}

// The rest of the line after the last "####", trimmed, a final '.' dropped;
// nullopt when that is empty.
std::optional<ByteRange> hashes_answer(std::string_view text) {
  const size_t at = text.rfind("####");
  if (at == std::string_view::npos) return std::nullopt;
  const size_t line_end = std::min(text.find('\n', at + 4), text.size());
  ByteRange rest = trimmed(text, {.begin = at + 4, .end = line_end});
  if (rest.end > rest.begin && text[rest.end - 1] == '.')
    rest = trimmed(text, {.begin = rest.begin, .end = rest.end - 1});
  if (rest.begin == rest.end) return std::nullopt;
  return rest;
}

bool ascii_digit(char c) {
  return c >= '0' && c <= '9';
}

// The last decimal number of `text`: an optional '-', digits with "1,000"
// thousands groups, an optional fraction.
std::optional<ByteRange> last_number(std::string_view text) {
  std::optional<ByteRange> last;
  size_t i = 0;
  while (i < text.size()) {
    if (!ascii_digit(text[i])) {
      ++i;
      continue;
    }
    const size_t start = i > 0 && text[i - 1] == '-' ? i - 1 : i;
    while (i < text.size() && ascii_digit(text[i]))
      ++i;
    // ",ddd" groups, each followed by a non-digit.
    while (i + 3 < text.size() && text[i] == ',' && ascii_digit(text[i + 1]) &&
           ascii_digit(text[i + 2]) && ascii_digit(text[i + 3]) &&
           (i + 4 == text.size() || !ascii_digit(text[i + 4])))
      i += 4;
    if (i + 1 < text.size() && text[i] == '.' && ascii_digit(text[i + 1])) {
      ++i;
      while (i < text.size() && ascii_digit(text[i]))
        ++i;
    }
    last = ByteRange{.begin = start, .end = i};
  }
  return last;
}

size_t count_occurrences(std::string_view text, std::string_view tag) {
  size_t n = 0;
  for (size_t at = text.find(tag); at != std::string_view::npos; at = text.find(tag, at + 1))
    ++n;
  return n;
}

}  // namespace

MatchMode parse_match_mode(std::string_view name) {
  if (name == "exact") return MatchMode::kExact;
  if (name == "numeric") return MatchMode::kNumeric;
  if (name == "caption") return MatchMode::kCaption;
  throw std::invalid_argument("unknown answer match mode '" + std::string(name) + "'");
}

AnswerForm parse_answer_form(std::string_view name) {
  if (name == "tags") return AnswerForm::kTags;
  if (name == "boxed") return AnswerForm::kBoxed;
  if (name == "hashes") return AnswerForm::kHashes;
  if (name == "last_number") return AnswerForm::kLastNumber;
  throw std::invalid_argument("unknown answer form '" + std::string(name) + "'");
}

std::optional<std::string> extract_answer(std::string_view text) {
  const AnswerForm tags[] = {AnswerForm::kTags};
  return extract_answer(text, tags);
}

std::optional<LocatedAnswer> locate_answer(std::string_view text,
                                           std::span<const AnswerForm> forms) {
  for (AnswerForm form : forms) {
    std::optional<ByteRange> got;
    switch (form) {
      case AnswerForm::kTags:
        got = tags_answer(text);
        break;
      case AnswerForm::kBoxed:
        got = boxed_answer(text);
        break;
      case AnswerForm::kHashes:
        got = hashes_answer(text);
        break;
      case AnswerForm::kLastNumber:
        got = last_number(text);
        break;
    }
    if (got) {
      return LocatedAnswer{.text = std::string(text.substr(got->begin, got->end - got->begin)),
                           .offset = got->begin};
    }
  }
  return std::nullopt;
}

std::optional<std::string> extract_answer(std::string_view text,
                                          std::span<const AnswerForm> forms) {
  std::optional<LocatedAnswer> located = locate_answer(text, forms);
  if (!located) return std::nullopt;
  return std::move(located->text);
}

bool answers_match(std::string_view got, std::string_view reference, MatchMode mode) {
  if (mode == MatchMode::kCaption) return caption_match(got, reference);
  if (mode == MatchMode::kNumeric) {
    const std::optional<double> a = parse_decimal(got);
    const std::optional<double> b = parse_decimal(reference);
    if (a && b) return std::fabs(*a - *b) <= 1e-9 * std::max(1.0, std::fabs(*b));
  }
  return trim(got) == trim(reference);
}

bool answer_correct(std::string_view response_text, std::string_view reference,
                    const AnswerRule& rule) {
  if (rule.match == MatchMode::kCaption) return caption_match(response_text, reference);
  const std::optional<std::string> got = extract_answer(response_text, rule.forms);
  return got && answers_match(*got, reference, rule.match);
}

bool well_formatted(std::string_view text) {
  const std::string_view t = trim(text);
  for (const std::string_view tag : {kThinkOpen, kThinkClose, kAnswerOpen, kAnswerClose}) {
    if (count_occurrences(t, tag) != 1) return false;
  }
  if (!t.starts_with(kThinkOpen) || !t.ends_with(kAnswerClose)) return false;
  const std::string_view after_think =
      trim(t.substr(t.find(kThinkClose) + kThinkClose.size()));  // "<answer>...</answer>"
  if (!after_think.starts_with(kAnswerOpen)) return false;
  const std::string_view answer = after_think.substr(
      kAnswerOpen.size(), after_think.size() - kAnswerOpen.size() - kAnswerClose.size());
  return !trim(answer).empty();
}

}  // namespace muse::rewards
