// Internals of the byte-level BPE tokenizer (not a public API; tokenizer.h is):
// the GPT-2 byte <-> character table that spells vocabulary strings, and the
// word splitter, tokenizer.json's pre-tokenizer chain, that cuts text into the
// words BPE merges within.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"

struct pcre2_real_code_8;  // pcre2.h's pcre2_code (8-bit code units)

namespace muse::data::detail {

// GPT-2's pre-tokenizer (openai/gpt-2 src/encoder.py; Hugging Face's ByteLevel
// pre-tokenizer with use_regex=true applies the same pattern).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3's (meta-llama/llama3 llama/tokenizer.py, pat_str; the Split regex of
// its tokenizer.json).
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Qwen2's (its tokenizer.json's Split regex): Llama 3's with single digits.
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// The character byte `b` is spelled with in vocabulary strings, as UTF-8
// (GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the
// other 68 bytes for U+0100.. in byte order, so ' ' is 'Ġ' and '\n' is 'Ċ').
std::string_view byte_char(uint8_t b);
// `bytes` spelled as a vocabulary string.
std::string bytes_to_token(std::string_view bytes);
// The bytes a vocabulary string stands for. A string with a character outside
// the table stands for its own UTF-8, as in Hugging Face's ByteLevel decoder.
std::string token_to_bytes(std::string_view token);

// One Split step of the chain: behavior "Isolated" (every match and every gap
// between matches becomes a piece), invert false.
struct SplitRule {
  std::string pattern;
  bool regex = true;  // false: `pattern` is a literal string
};

// The pre-tokenizer: the Split steps in order, then ByteLevel.
struct WordSplitterSpec {
  std::vector<SplitRule> splits;
  bool add_prefix_space = false;  // ByteLevel: a ' ' before each piece not starting with one
  bool trim_offsets = true;       // ByteLevel: kept for tokenizer.json; offsets only
  bool use_regex = false;         // ByteLevel: split each piece with kGpt2Pattern as well
};

// The pre-tokenizer that training with `pretokenizer` writes into tokenizer.json:
// GPT-2's is ByteLevel with use_regex, Llama 3's is Split(kLlama3Pattern)
// then ByteLevel without, as `tokenizers` spells them.
WordSplitterSpec pretokenizer_spec(Pretokenizer pretokenizer);

// llama.cpp's name for the pre-tokenizer `spec` (GGUF tokenizer.ggml.pre:
// "llama-bpe", "qwen2" or "gpt-2"), or empty when llama.cpp has none that
// splits text the same way.
std::string_view llama_cpp_pre_name(const WordSplitterSpec& spec);

// A `tokenizers` (Oniguruma) regex in PCRE2 syntax. The two differ in \s:
// Oniguruma's is Unicode's White_Space, PCRE2's adds U+180E, so \s (in and out
// of classes) and \S (outside classes) become explicit White_Space classes.
std::string oniguruma_to_pcre2(std::string_view pattern);

// A PCRE2 pattern compiled with UTF, UCP and MATCH_INVALID_UTF (invalid UTF-8
// in the subject is never part of a match, so it ends up in a gap piece; a
// literal is matched byte by byte), JIT compiled when PCRE2 has a JIT. Shared
// by threads; matching is const.
class Regex {
 public:
  // An Oniguruma regex (see oniguruma_to_pcre2), or a literal string. Throws
  // TokenizerError naming the pattern and PCRE2's complaint.
  Regex(std::string_view pattern, bool literal);
  // The first non-empty match in `subject` at or after byte `from`: sets
  // [*begin, *end) and returns true, or returns false.
  bool find(std::string_view subject, size_t from, size_t* begin, size_t* end) const;

 private:
  struct Free {
    void operator()(pcre2_real_code_8* code) const;
  };
  std::unique_ptr<pcre2_real_code_8, Free> code_;  // [not null]
  bool jit_ = false;                               // code_ is JIT compiled
};

class WordSplitter {
 public:
  explicit WordSplitter(WordSplitterSpec spec);

  // Calls emit(word) for the words of `text` in order. Their concatenation is
  // `text`, except for the spaces add_prefix_space inserts.
  template <class Emit>
  void split(std::string_view text, Emit&& emit) const {
    split_from(0, text, emit);
  }

 private:
  // Splits `text` with rule `rule` and hands each piece to the next rule; the
  // rule after the last Split is ByteLevel's.
  template <class Emit>
  void split_from(size_t rule, std::string_view text, Emit& emit) const {
    if (text.empty()) return;
    if (rule == spec_.splits.size()) {
      if (spec_.add_prefix_space && text.front() != ' ') {
        std::string prefixed(1, ' ');
        prefixed += text;
        byte_level(prefixed, emit);
      } else {
        byte_level(text, emit);
      }
      return;
    }
    isolate(regexes_[rule], text,
            [&](std::string_view piece) { split_from(rule + 1, piece, emit); });
  }

  template <class Emit>
  void byte_level(std::string_view text, Emit& emit) const {
    if (spec_.use_regex) {
      isolate(regexes_.back(), text, emit);
    } else {
      emit(text);
    }
  }

  template <class Emit>
  static void isolate(const Regex& regex, std::string_view text, Emit&& emit) {
    size_t done = 0, begin = 0, end = 0;
    while (done < text.size() && regex.find(text, done, &begin, &end)) {
      if (begin > done) emit(text.substr(done, begin - done));
      emit(text.substr(begin, end - begin));
      done = end;
    }
    if (done < text.size()) emit(text.substr(done));
  }

  WordSplitterSpec spec_;
  std::vector<Regex> regexes_;  // one per Split, then kGpt2Pattern's when use_regex
};

}  // namespace muse::data::detail
