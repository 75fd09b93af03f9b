#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <string>
#include <utility>

#include "data/tokenizer.h"
#include "data/tokenizer_words.h"

namespace muse::data::detail {
namespace {

// Code points past the last one the byte table uses (U+0143).
constexpr char32_t kTableEnd = 0x144;

struct ByteTable {
  std::array<std::string, 256> chars;    // byte -> its character's UTF-8
  std::array<int16_t, kTableEnd> bytes;  // code point -> byte, -1 outside the table

  ByteTable() {
    bytes.fill(-1);
    char32_t next_extra = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? static_cast<char32_t>(b) : next_extra++;
      bytes[cp] = static_cast<int16_t>(b);
      if (cp < 0x80) {
        chars[b] = std::string(1, static_cast<char>(cp));
      } else {
        chars[b] = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
      }
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable table;
  return table;
}

// Per-thread match data (only the whole match's offsets are read).
pcre2_match_data* match_data() {
  struct Free {
    void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
  };
  thread_local std::unique_ptr<pcre2_match_data, Free> data(pcre2_match_data_create(1, nullptr));
  return data.get();
}

std::string pcre2_message(int code) {
  std::array<PCRE2_UCHAR, 256> buffer{};
  pcre2_get_error_message(code, buffer.data(), buffer.size());
  return reinterpret_cast<const char*>(buffer.data());
}

}  // namespace

std::string_view byte_char(uint8_t b) {
  return byte_table().chars[b];
}

std::string bytes_to_token(std::string_view bytes) {
  const ByteTable& table = byte_table();
  std::string token;
  token.reserve(bytes.size() * 2);
  for (const char c : bytes)
    token += table.chars[static_cast<uint8_t>(c)];
  return token;
}

std::string token_to_bytes(std::string_view token) {
  const ByteTable& table = byte_table();
  std::string bytes;
  bytes.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    const auto lead = static_cast<uint8_t>(token[i]);
    char32_t cp = kTableEnd;  // anything outside the table
    if (lead < 0x80) {
      cp = lead;
      i += 1;
    } else if ((lead & 0xE0) == 0xC0 && i + 1 < token.size()) {
      cp = (char32_t{lead} & 0x1F) << 6 | (static_cast<uint8_t>(token[i + 1]) & 0x3F);
      i += 2;
    }
    if (cp >= kTableEnd || table.bytes[cp] < 0) return std::string(token);
    bytes += static_cast<char>(table.bytes[cp]);
  }
  return bytes;
}

std::string oniguruma_to_pcre2(std::string_view pattern) {
  // Unicode's White_Space, as ranges a class body can hold.
  constexpr std::string_view kWhiteSpace =
      R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 'Q') {  // \Q...\E is literal text: copied as is
        const size_t end = pattern.find("\\E", i);
        const size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
        out.append(pattern.substr(i - 1, stop - (i - 1)));
        i = stop - 1;
      } else if (next == 's' || (next == 'S' && !in_class)) {
        if (!in_class) out += next == 's' ? "[" : "[^";
        out += kWhiteSpace;
        if (!in_class) out += ']';
      } else {
        out += c;
        out += next;
      }
      continue;
    }
    out += c;
    if (!in_class && c == '[') {
      in_class = true;
      // A ']' right after '[' or '[^' is a literal member, not the end.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
    } else if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      const size_t end = pattern.find(":]", i + 2);  // a POSIX class such as [:alpha:]
      if (end != std::string_view::npos) {
        out.append(pattern.substr(i + 1, end + 2 - (i + 1)));
        i = end + 1;
      }
    } else if (in_class && c == ']') {
      in_class = false;
    }
  }
  return out;
}

WordSplitterSpec pretokenizer_spec(Pretokenizer pretokenizer) {
  WordSplitterSpec spec;
  if (pretokenizer == Pretokenizer::kGpt2) {
    spec.use_regex = true;
  } else {
    spec.splits.emplace_back().pattern = kLlama3Pattern;
  }
  return spec;
}

std::string_view llama_cpp_pre_name(const WordSplitterSpec& spec) {
  // llama.cpp's own regexes for these names (llama-vocab.cpp) are these
  // patterns; add_prefix_space would prepend a space llama.cpp does not.
  if (spec.add_prefix_space) return {};
  if (spec.splits.empty()) return spec.use_regex ? "gpt-2" : "";
  if (spec.splits.size() != 1 || !spec.splits[0].regex || spec.use_regex) return {};
  if (spec.splits[0].pattern == kLlama3Pattern) return "llama-bpe";
  if (spec.splits[0].pattern == kQwen2Pattern) return "qwen2";
  return {};
}

void Regex::Free::operator()(pcre2_real_code_8* code) const {
  pcre2_code_free(code);
}

Regex::Regex(std::string_view pattern, bool literal) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // A literal is matched byte by byte: valid UTF-8 never matches inside a character.
  const uint32_t options =
      literal ? PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  const std::string translated = literal ? std::string(pattern) : oniguruma_to_pcre2(pattern);
  code_.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                            options, &error, &offset, nullptr));
  if (!code_) {
    throw TokenizerError("pre-tokenizer pattern '" + std::string(pattern) + "' does not compile (" +
                         pcre2_message(error) + ")");
  }
  // Without a JIT (some platforms) pcre2_match interprets the pattern instead.
  jit_ = pcre2_jit_compile(code_.get(), PCRE2_JIT_COMPLETE) == 0;
}

bool Regex::find(std::string_view subject, size_t from, size_t* begin, size_t* end) const {
  pcre2_match_data* data = match_data();
  while (from < subject.size()) {
    const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
    const int rc = jit_ ? pcre2_jit_match(code_.get(), text, subject.size(), from, 0, data, nullptr)
                        : pcre2_match(code_.get(), text, subject.size(), from, 0, data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) throw TokenizerError("pre-tokenizer regex failed: " + pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    if (ovector[1] > ovector[0]) {
      *begin = ovector[0];
      *end = ovector[1];
      return true;
    }
    // An empty match splits nothing: look again from the next character.
    from = ovector[0] + 1;
    while (from < subject.size() && (static_cast<uint8_t>(subject[from]) & 0xC0) == 0x80)
      ++from;
  }
  return false;
}

WordSplitter::WordSplitter(WordSplitterSpec spec) : spec_(std::move(spec)) {
  for (const SplitRule& rule : spec_.splits)
    regexes_.emplace_back(rule.pattern, !rule.regex);
  if (spec_.use_regex) regexes_.emplace_back(kGpt2Pattern, false);
}

}  // namespace muse::data::detail
