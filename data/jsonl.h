// JSON Lines records, the input of `muse-data build` and of prompt sets: one
// object per line,
//   {"text": "a caption <image> ...", "images": ["img/0001.png", ...]}
// with one <image> marker in the text per entry of "images" (paths relative to
// the JSONL file). Supervised and evaluation records name their fields
// instead, e.g. {"prompt": "... <image>", "solution": "...", "answer": "7",
// "images": [...]}; their markers belong to the prompt.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace muse::data {

struct Record {
  std::string text;
  std::vector<std::string> images;
};

// The string values under the keys a caller asked for, in that order.
struct FieldRecord {
  std::vector<std::string> values;  // one per key
  std::vector<std::string> images;
};

// Parses one line. Throws DataError with the problem (without the file and
// line, which the caller knows): malformed JSON, a missing or non-string
// "text", a non-list "images" or non-string entry, or a count of <image>
// markers that differs from the number of images.
Record parse_record(std::string_view line);

// Parses one line whose `keys` (at least one) all hold strings. The <image>
// markers of the first key's value are the record's images, one per entry of
// "images"; the other values may hold none (the model cannot be shown an
// image in its response). Throws DataError naming the key at fault.
FieldRecord parse_fields(std::string_view line, std::span<const std::string> keys);

// Occurrences of the <image> marker in `text`.
int64_t count_image_markers(std::string_view text);

}  // namespace muse::data
