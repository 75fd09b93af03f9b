// JSON Lines records, the input of `muse-data build`: one object per line,
//   {"text": "a caption <image> ...", "images": ["img/0001.png", ...]}
// with one <image> marker in the text per entry of "images" (paths relative to
// the JSONL file). Other keys ("answer", "prompt", ...) are ignored here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace muse::data {

struct Record {
  std::string text;
  std::vector<std::string> images;
};

// Parses one line. Throws DataError with the problem (without the file and
// line, which the caller knows): malformed JSON, a missing or non-string
// "text", a non-list "images" or non-string entry, or a count of <image>
// markers that differs from the number of images.
Record parse_record(std::string_view line);

// Occurrences of the <image> marker in `text`.
int64_t count_image_markers(std::string_view text);

}  // namespace muse::data
