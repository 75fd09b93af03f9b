// NFC with ICU, restricted to the Unicode version `tokenizers` normalizes by.
#include "data/tokenizer_nfc.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uniset.h>
#include <unicode/unistr.h>
#include <unicode/utypes.h>

#include <cstdint>
#include <cstring>
#include <limits>

#include "data/tokenizer.h"

namespace muse::data::detail {
namespace {

void check(UErrorCode status, const std::string& what) {
  if (U_FAILURE(status)) {
    throw TokenizerError("NFC normalizer: " + what + " failed in ICU (" + u_errorName(status) +
                         ")");
  }
}

// Eight bytes at a time: the test every piece of text pays, so ASCII text
// costs a scan and nothing else.
bool is_ascii(std::string_view text) {
  uint64_t bits = 0;
  size_t i = 0;
  for (; i + 8 <= text.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    bits |= word;
  }
  for (; i < text.size(); ++i)
    bits |= static_cast<uint8_t>(text[i]);
  return (bits & 0x8080808080808080ull) == 0;
}

const icu::Normalizer2& icu_nfc() {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  check(status, "loading the NFC data");
  return *nfc;
}

icu::UnicodeSet assigned_by(std::string_view version) {
  UErrorCode status = U_ZERO_ERROR;
  icu::UnicodeSet set(icu::UnicodeString::fromUTF8("[:age=" + std::string(version) + ":]"), status);
  check(status, "the set of Unicode " + std::string(version) + " characters");
  return set;
}

// ICU's NFC, and the same applied only to runs of characters assigned by
// kNfcUnicodeVersion: the others are copied and act as boundaries, as
// unassigned characters do in `tokenizers`' tables. Immutable, so threads
// share it.
struct TokenizersNfc {
  TokenizersNfc()
      : full(icu_nfc()), assigned(assigned_by(kNfcUnicodeVersion)), nfc(full, *assigned.freeze()) {}
  const icu::Normalizer2& full;
  icu::UnicodeSet assigned;  // [frozen]
  icu::FilteredNormalizer2 nfc;
};

}  // namespace

std::string_view to_nfc(std::string_view text, std::string& buffer) {
  if (is_ascii(text)) return text;
  if (text.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw TokenizerError("NFC normalizer: a text of " + std::to_string(text.size()) +
                         " bytes is longer than ICU takes (2^31-1); encode it in parts");
  }
  static const TokenizersNfc normalizer;
  const icu::StringPiece piece(text.data(), static_cast<int32_t>(text.size()));
  UErrorCode status = U_ZERO_ERROR;
  // The unrestricted check is three times faster, and a text it accepts is
  // unchanged by the restricted NFC too: the runs the filter normalizes are
  // substrings of it, and substrings of an NFC text are in NFC.
  const bool normalized = normalizer.full.isNormalizedUTF8(piece, status);
  check(status, "checking a text");
  if (normalized) return text;
  buffer.clear();
  icu::StringByteSink<std::string> sink(&buffer, piece.length());
  // ICU copies ill-formed UTF-8 unchanged and composes nothing across it.
  normalizer.nfc.normalizeUTF8(0, piece, sink, nullptr, status);
  check(status, "normalizing a text");
  return buffer;
}

}  // namespace muse::data::detail
