// Internals of the byte-level BPE tokenizer (not a public API; tokenizer.h is):
// the state behind Tokenizer, shared by tokenizer.cpp (encode, decode),
// tokenizer_json.cpp (load, save) and tokenizer_train.cpp.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/tokenizer.h"
#include "data/tokenizer_nfc.h"
#include "data/tokenizer_words.h"

namespace muse::data {
namespace detail {

// 'token', for error messages.
std::string in_quotes(std::string_view token);

// Lets unordered maps keyed by std::string be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// A token matched in the raw text before pre-tokenization (tokenizer.json's
// added_tokens; single_word, lstrip and rstrip are false).
struct AddedToken {
  std::string content;  // [not empty]
  int32_t id = 0;
  bool special = true;      // encode(..., parse_special=false) treats it as text
  bool normalized = false;  // matched in a second pass, in the text the first left
};

// A BPE merge: `left` and `right` side by side become `id`. Its rank is its
// index in the merge list (lower merges first).
struct Merge {
  int32_t left = 0;
  int32_t right = 0;
  int32_t id = 0;
};

// What a tokenizer.json holds, and what training produces.
struct TokenizerParts {
  std::vector<std::pair<std::string, int32_t>> vocab;  // model.vocab, ordered by id
  std::vector<Merge> merges;                           // by rank
  std::vector<AddedToken> added;                       // in file order
  std::optional<std::string> unk_token;                // a model.vocab string
  bool nfc = false;  // the normalizer is NFC (the only one supported); else there is none
  bool fuse_unk = false;
  bool ignore_merges = false;  // a word that is a whole vocab token skips the merges
  WordSplitterSpec pre_tokenizer;
  std::string post_processor = "null";  // tokenizer.json's, kept as JSON text for save
};

// (left, right) -> (rank, id) with open addressing: the lookup BPE encoding
// spends its time in.
class MergeMap {
 public:
  struct Entry {
    uint64_t key = kEmpty;
    int32_t rank = 0;
    int32_t id = 0;
  };
  // A pair listed twice keeps its last rank, as in `tokenizers`.
  explicit MergeMap(const std::vector<Merge>& merges);
  // The merge of `left` then `right`, or nullptr.
  const Entry* find(int32_t left, int32_t right) const;

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t key(int32_t left, int32_t right) {
    return uint64_t{static_cast<uint32_t>(left)} << 32 | static_cast<uint32_t>(right);
  }
  size_t home(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }

  std::vector<Entry> slots_;  // a power of two, at most half full
  int shift_ = 64;            // 64 - log2(slots_.size())
};

// Leftmost-longest search for added tokens (Aho-Corasick's LeftmostLongest in
// `tokenizers`; here candidates by first byte, longest first: the sets are small
// and a text rarely has many bytes that start one).
class AddedMatcher {
 public:
  // Matches the tokens whose `normalized` flag equals `normalized`, with their
  // contents in NFC when `nfc` (`tokenizers` normalizes those contents too).
  AddedMatcher(const std::vector<AddedToken>& tokens, bool normalized, bool nfc);
  // The leftmost-longest match at or after `from`: its offsets [begin, end)
  // and the index of its token in `tokens`, or false.
  bool find(std::string_view text, size_t from, size_t* begin, size_t* end, size_t* token) const;

 private:
  struct Candidate {
    std::string content;
    size_t token = 0;
  };
  std::array<std::vector<Candidate>, 256> by_first_byte_;
  size_t count_ = 0;  // candidates in all lists
};

}  // namespace detail

struct Tokenizer::Impl {
  // Validates and indexes `parts`; errors are TokenizerErrors starting with
  // `where` (the file, or "train").
  Impl(detail::TokenizerParts parts, const std::string& where);

  // Cuts `text` into added tokens (on_id(id)) and pre-tokenized words
  // (on_word(bytes)), in order. As in `tokenizers`, the normalizer sees each
  // piece between the tokens with `normalized: false`, before the others are
  // matched in it.
  template <class OnWord, class OnId>
  void split(std::string_view text, bool parse_special, OnWord&& on_word, OnId&& on_id) const {
    extract_added(raw_matcher, text, parse_special, on_id, [&](std::string_view gap) {
      std::string buffer;  // the gap in NFC, when that differs from the gap
      extract_added(normalized_matcher, parts.nfc ? detail::to_nfc(gap, buffer) : gap,
                    parse_special, on_id,
                    [&](std::string_view rest) { splitter.split(rest, on_word); });
    });
  }
  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;
  // Adds the occurrences of each word of `text` to `counts` (training).
  void count_words(std::string_view text, detail::StringMap<int64_t>& counts) const;

  const detail::TokenizerParts parts;
  const detail::WordSplitter splitter;
  detail::StringMap<int32_t> vocab_ids;  // model.vocab
  detail::StringMap<int32_t> added_ids;  // added_tokens' contents
  std::vector<std::string> id_bytes;     // id -> the bytes it decodes to; empty: no such id
  std::array<int32_t, 256> byte_ids{};   // byte -> its token, -1 when model.vocab lacks it
  std::optional<int32_t> unk_id;
  detail::MergeMap merge_map;
  detail::AddedMatcher raw_matcher;
  detail::AddedMatcher normalized_matcher;
  uint64_t serial = 0;  // tells per-thread word caches which tokenizer filled them
  std::string origin;   // the file, or "train"
  TokenRoles roles;     // resolved once the Tokenizer around this exists
  std::optional<ChatTemplate> chat;
  std::string chat_system;

 private:
  template <class OnId, class OnText>
  void extract_added(const detail::AddedMatcher& matcher, std::string_view text, bool parse_special,
                     OnId& on_id, OnText&& on_text) const {
    size_t done = 0, from = 0, begin = 0, index = 0;
    while (matcher.find(text, from, &begin, &from, &index)) {
      const detail::AddedToken& token = parts.added[index];
      if (token.special && !parse_special) continue;
      if (begin > done) on_text(text.substr(done, begin - done));
      on_id(token.id);
      done = from;
    }
    if (done < text.size()) on_text(text.substr(done));
  }
  // BPE on the bytes of `word` (no cache), as `tokenizers` merges: lowest rank
  // first, leftmost among equal ranks.
  void merge_word(std::string_view word, std::vector<int32_t>& ids) const;
};

}  // namespace muse::data
