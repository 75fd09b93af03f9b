#include "data/jsonl.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/data_error.h"
#include "data/tokenizer.h"

namespace muse::data {

int64_t count_image_markers(std::string_view text) {
  int64_t n = 0;
  for (size_t at = text.find(kImage); at != std::string_view::npos;
       at = text.find(kImage, at + kImage.size()))
    ++n;
  return n;
}

FieldRecord parse_fields(std::string_view line, std::span<const std::string> keys) {
  if (keys.empty()) throw std::invalid_argument("parse_fields: no keys");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    // nlohmann's message: "[json.exception.parse_error.101] parse error at line 1, column 9: ..."
    const std::string message = e.what();
    const auto at = message.find("column");
    throw DataError("malformed JSON: " + (at == std::string::npos ? message : message.substr(at)));
  }
  if (!j.is_object()) throw DataError("expected a JSON object, got " + std::string(j.type_name()));
  FieldRecord r;
  for (const auto& key : keys) {
    const auto value = j.find(key);
    if (value == j.end()) throw DataError("missing \"" + key + "\"");
    if (!value->is_string())
      throw DataError("\"" + key + "\" must be a string, got " + std::string(value->type_name()));
    r.values.push_back(value->get<std::string>());
  }
  if (const auto images = j.find("images"); images != j.end() && !images->is_null()) {
    if (!images->is_array())
      throw DataError("\"images\" must be a list of paths, got " +
                      std::string(images->type_name()));
    for (const auto& path : *images) {
      if (!path.is_string()) {
        throw DataError("\"images\" must be a list of paths, found " +
                        std::string(path.type_name()));
      }
      r.images.push_back(path.get<std::string>());
    }
  }
  const int64_t markers = count_image_markers(r.values.front());
  if (markers != static_cast<int64_t>(r.images.size())) {
    throw DataError("\"" + keys.front() + "\" has " + std::to_string(markers) + " " +
                    std::string(kImage) + " marker(s) but \"images\" lists " +
                    std::to_string(r.images.size()) + " image(s)");
  }
  for (size_t k = 1; k < keys.size(); ++k) {
    if (count_image_markers(r.values[k]) > 0) {
      throw DataError("\"" + keys[k] + "\" holds an " + std::string(kImage) +
                      " marker: images belong in \"" + keys.front() + "\"");
    }
  }
  return r;
}

Record parse_record(std::string_view line) {
  static const std::string kText[] = {"text"};
  FieldRecord fields = parse_fields(line, kText);
  return {std::move(fields.values.front()), std::move(fields.images)};
}

}  // namespace muse::data
