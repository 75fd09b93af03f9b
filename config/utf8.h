// Well-formed UTF-8 for text that must be valid Unicode (JSON, YAML, prompts).
#pragma once

#include <string>
#include <string_view>

namespace muse::config {

// `text` with every byte that does not belong to a well-formed UTF-8
// sequence (RFC 3629) replaced by `replacement`. Decoded tokens are bytes: a
// byte-level token can end inside a character.
std::string valid_utf8(std::string_view text, std::string_view replacement);

// U+FFFD, what Python's errors="replace" and Rust's from_utf8_lossy put in.
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";

}  // namespace muse::config
