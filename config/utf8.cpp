#include "config/utf8.h"

namespace muse::config {

std::string valid_utf8(std::string_view text, std::string_view replacement) {
  std::string out;
  out.reserve(text.size());
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  for (size_t i = 0; i < text.size();) {
    // The sequence length and the range of the second byte follow from the
    // lead byte; later bytes are 80..BF.
    const unsigned char lead = byte(i);
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (lead < 0x80) {
      len = 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      len = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      len = 3;
      lo = lead == 0xE0 ? 0xA0 : 0x80;
      hi = lead == 0xED ? 0x9F : 0xBF;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      len = 4;
      lo = lead == 0xF0 ? 0x90 : 0x80;
      hi = lead == 0xF4 ? 0x8F : 0xBF;
    }
    bool ok = len > 0 && i + len <= text.size();
    for (size_t j = 1; ok && j < len; ++j)
      ok = j == 1 ? byte(i + 1) >= lo && byte(i + 1) <= hi : (byte(i + j) >> 6) == 0x2;
    if (ok) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += replacement;
      ++i;
    }
  }
  return out;
}

}  // namespace muse::config
