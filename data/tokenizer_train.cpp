// Training a byte-level BPE vocabulary: count the pre-tokenized words, then
// merge the most frequent adjacent pair again and again, keeping pair counts
// up to date from the words each merge touches (an index from pairs to words)
// instead of recounting everything.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "data/tokenizer.h"
#include "data/tokenizer_impl.h"

namespace muse::data {
namespace {

using detail::TokenizerParts;

// Ids: the special tokens first (0..7, in kSpecialTokens' order), then the 256
// bytes in byte order, then one per learned merge.
constexpr auto kSpecialCount = static_cast<int32_t>(std::size(kSpecialTokens));
constexpr int32_t kBaseVocab = kSpecialCount + 256;

uint64_t pair_key(int32_t left, int32_t right) {
  return uint64_t{static_cast<uint32_t>(left)} << 32 | static_cast<uint32_t>(right);
}

void check(const TrainOptions& options) {
  if (options.vocab_size < kBaseVocab || options.vocab_size > std::numeric_limits<int32_t>::max()) {
    throw TokenizerError("train: vocab_size " + std::to_string(options.vocab_size) +
                         " is outside " + std::to_string(kBaseVocab) +
                         "..2^31-1 (every vocabulary has the 256 bytes and " +
                         std::to_string(kSpecialCount) + " special tokens)");
  }
  if (options.min_pair_count < 1) {
    throw TokenizerError("train: min_pair_count " + std::to_string(options.min_pair_count) +
                         " must be at least 1");
  }
}

// The vocabulary before any merge, and the pre-tokenizer.
TokenizerParts base_parts(Pretokenizer pretokenizer) {
  TokenizerParts parts;
  for (int32_t i = 0; i < kSpecialCount; ++i) {
    const std::string special(kSpecialTokens[i]);
    parts.vocab.emplace_back(special, i);
    parts.added.push_back({special, i, /*special=*/true, /*normalized=*/false});
  }
  for (int b = 0; b < 256; ++b) {
    parts.vocab.emplace_back(detail::byte_char(static_cast<uint8_t>(b)), kSpecialCount + b);
  }
  parts.pre_tokenizer = detail::pretokenizer_spec(pretokenizer);
  return parts;
}

// Replaces every `left right` in `word` by `merged`, left to right, and reports
// each adjacent pair that appears (+1) or disappears (-1) around a replacement
// (the pair `left right` itself excepted).
template <class Change>
void merge_pair(std::vector<int32_t>& word, int32_t left, int32_t right, int32_t merged,
                Change&& change) {
  size_t out = 0;
  for (size_t i = 0; i < word.size();) {
    if (i + 1 < word.size() && word[i] == left && word[i + 1] == right) {
      if (out > 0) {
        change(word[out - 1], left, -1);
        change(word[out - 1], merged, +1);
      }
      if (i + 2 < word.size()) {
        change(right, word[i + 2], -1);
        change(merged, word[i + 2], +1);
      }
      word[out++] = merged;
      i += 2;
    } else {
      word[out++] = word[i++];
    }
  }
  word.resize(out);
}

// Learns merges over `counts` (word bytes -> occurrences) on top of `parts`'
// base vocabulary.
TokenizerParts learn_merges(const detail::StringMap<int64_t>& counts, const TrainOptions& options,
                            TokenizerParts parts) {
  std::vector<std::vector<int32_t>> words;  // each word as token ids
  std::vector<int64_t> word_counts;
  words.reserve(counts.size());
  word_counts.reserve(counts.size());
  for (const auto& [word, count] : counts) {
    std::vector<int32_t>& symbols = words.emplace_back();
    for (const char c : word)
      symbols.push_back(kSpecialCount + static_cast<uint8_t>(c));
    word_counts.push_back(count);
  }

  std::vector<std::string> token_bytes(kSpecialCount);  // id -> bytes (specials: unused)
  detail::StringMap<int32_t> token_ids;                 // bytes -> id, bytes and merges
  for (int b = 0; b < 256; ++b) {
    token_bytes.emplace_back(1, static_cast<char>(b));
    token_ids.emplace(token_bytes.back(), kSpecialCount + b);
  }

  std::unordered_map<uint64_t, int64_t> pair_counts;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;  // may repeat a word
  for (size_t w = 0; w < words.size(); ++w) {
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t pair = pair_key(words[w][i], words[w][i + 1]);
      pair_counts[pair] += word_counts[w];
      pair_words[pair].push_back(static_cast<int32_t>(w));
    }
  }

  // The most frequent pair first; among equal counts the smallest (left, right).
  // Entries go stale as counts change: a popped entry is checked against
  // pair_counts, and every pair whose count grows gets a fresh entry.
  struct Entry {
    int64_t count;
    uint64_t pair;
  };
  const auto lower = [](const Entry& a, const Entry& b) {
    return a.count != b.count ? a.count < b.count : a.pair > b.pair;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(lower)> queue(lower);
  for (const auto& [pair, count] : pair_counts)
    queue.push({count, pair});

  std::unordered_set<uint64_t> merged_pairs;
  std::vector<uint64_t> grown;
  while (static_cast<int64_t>(token_bytes.size()) < options.vocab_size && !queue.empty()) {
    const Entry top = queue.top();
    queue.pop();
    const auto found = pair_counts.find(top.pair);
    const int64_t count = found == pair_counts.end() ? 0 : found->second;
    if (count != top.count) {
      if (count > 0) queue.push({count, top.pair});
      continue;
    }
    if (count < options.min_pair_count) break;

    const auto left = static_cast<int32_t>(top.pair >> 32);
    const auto right = static_cast<int32_t>(top.pair & 0xFFFFFFFFu);
    // Two merges can spell the same bytes ("ab"+"c", "a"+"bc"): they share a token.
    const std::string bytes = token_bytes[left] + token_bytes[right];
    const auto [token, added] =
        token_ids.try_emplace(bytes, static_cast<int32_t>(token_bytes.size()));
    const int32_t merged = token->second;
    if (added) {
      token_bytes.push_back(bytes);
      parts.vocab.emplace_back(detail::bytes_to_token(bytes), merged);
    }
    if (merged_pairs.insert(top.pair).second) parts.merges.push_back({left, right, merged});

    std::vector<int32_t> touched = std::move(pair_words[top.pair]);
    pair_words.erase(top.pair);
    pair_counts.erase(top.pair);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    grown.clear();
    for (const int32_t w : touched) {
      merge_pair(words[w], left, right, merged, [&](int32_t a, int32_t b, int sign) {
        const uint64_t pair = pair_key(a, b);
        if (pair == top.pair) return;
        int64_t& pair_count = pair_counts[pair];
        pair_count += sign * word_counts[w];
        if (sign > 0) {
          pair_words[pair].push_back(w);
          grown.push_back(pair);
        } else if (pair_count == 0) {
          pair_counts.erase(pair);
        }
      });
    }
    std::sort(grown.begin(), grown.end());
    grown.erase(std::unique(grown.begin(), grown.end()), grown.end());
    for (const uint64_t pair : grown) {
      if (const auto it = pair_counts.find(pair); it != pair_counts.end()) {
        queue.push({it->second, pair});
      }
    }
  }
  return parts;
}

}  // namespace

Tokenizer Tokenizer::with_default_roles(Tokenizer tokenizer) {
  tokenizer.impl_->roles = resolve_token_roles(tokenizer, "", TokenRolesConfig{});
  return tokenizer;
}

Tokenizer Tokenizer::train(const std::vector<std::string>& files, const TrainOptions& options) {
  check(options);
  if (files.empty()) throw TokenizerError("train: no training files given");
  const Impl base(base_parts(options.pretokenizer), "train");
  detail::StringMap<int64_t> counts;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      throw TokenizerError(file + ": cannot open the training text (" + std::strerror(errno) + ")");
    }
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw TokenizerError(file + ": cannot read the training text");
    base.count_words(text, counts);
  }
  return with_default_roles(
      Tokenizer(std::make_unique<Impl>(learn_merges(counts, options, base.parts), "train")));
}

Tokenizer Tokenizer::train_from_texts(const std::vector<std::string>& texts,
                                      const TrainOptions& options) {
  check(options);
  const Impl base(base_parts(options.pretokenizer), "train");
  detail::StringMap<int64_t> counts;
  for (const std::string& text : texts)
    base.count_words(text, counts);
  return with_default_roles(
      Tokenizer(std::make_unique<Impl>(learn_merges(counts, options, base.parts), "train")));
}

void Tokenizer::Impl::count_words(std::string_view text, detail::StringMap<int64_t>& counts) const {
  // Special tokens in the text are cut out and not learned from.
  split(
      text, /*parse_special=*/true,
      [&](std::string_view word) {
        if (const auto it = counts.find(word); it != counts.end()) {
          ++it->second;
        } else {
          counts.emplace(word, 1);
        }
      },
      [](int32_t) {});
}

}  // namespace muse::data
