// The NFC normalizer of tokenizer.json ("normalizer": {"type": "NFC"}, as in
// Qwen2 and Qwen2.5), computed as the `tokenizers` package computes it.
#pragma once

#include <string>
#include <string_view>

namespace muse::data::detail {

// The Unicode version of `tokenizers`' NFC tables (the Rust crate
// unicode-normalization-alignments 0.1.12): characters assigned later are
// left as they are and neither compose nor reorder with their neighbours.
inline constexpr std::string_view kNfcUnicodeVersion = "9.0";

// `text` in Unicode Normalization Form C. Returns `text` itself when ICU's
// own (newer) tables find it in NFC, which ASCII text always is (and that
// without a call into ICU); otherwise the normalized text, stored in
// `buffer`. Bytes that are not valid UTF-8 are kept as they are and separate
// the valid runs around them, which are normalized each on its own. Throws
// TokenizerError when ICU fails or `text` is not ASCII and 2 GiB or longer.
std::string_view to_nfc(std::string_view text, std::string& buffer);

}  // namespace muse::data::detail
