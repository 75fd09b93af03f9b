#include "formats/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "checkpoints/checkpoint_error.h"

namespace muse::formats {
namespace {

using nlohmann::json;

// Bits per element of every dtype the format defines (safetensors' Dtype).
int64_t dtype_bits(const std::string& dtype) {
  static const std::map<std::string, int64_t> bits = {
      {"BOOL", 8},    {"U8", 8},          {"I8", 8},          {"F8_E5M2", 8}, {"F8_E4M3", 8},
      {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8}, {"I16", 16},    {"U16", 16},
      {"F16", 16},    {"BF16", 16},       {"I32", 32},        {"U32", 32},    {"F32", 32},
      {"I64", 64},    {"U64", 64},        {"F64", 64},        {"C64", 64},    {"F4", 4},
      {"F6_E2M3", 6}, {"F6_E3M2", 6}};
  const auto it = bits.find(dtype);
  return it == bits.end() ? 0 : it->second;
}

[[noreturn]] void bad(const std::string& path, const std::string& what) {
  throw checkpoints::CheckpointError(path + ": " + what);
}

// a * b, or nullopt on int64 overflow.
std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return std::nullopt;
  return a * b;
}

}  // namespace

SafetensorsLayout check_safetensors(const std::string& path, int64_t size, uint64_t n,
                                    std::string_view header) {
  if (n > static_cast<uint64_t>(kSafetensorsMaxHeader)) {
    bad(path, "header of " + std::to_string(n) + " bytes is over the limit of " +
                  std::to_string(kSafetensorsMaxHeader));
  }
  if (static_cast<int64_t>(n) > size - 8) {
    bad(path, "header of " + std::to_string(n) + " bytes runs past the end of the file (" +
                  std::to_string(size) + " bytes)");
  }
  if (header.empty() || header.front() != '{') bad(path, "header does not start with '{'");

  // Duplicate top-level keys are an error (the JSON library keeps the last).
  std::set<std::string> seen;
  std::string duplicate;
  const json::parser_callback_t no_duplicates = [&](int depth, json::parse_event_t event,
                                                    json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 &&
        !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json j;
  try {
    j = json::parse(header, no_duplicates);
  } catch (const json::exception& e) {
    bad(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) bad(path, "tensor '" + duplicate + "' appears twice in the header");
  if (!j.is_object()) bad(path, "header is not a JSON object");

  SafetensorsLayout layout{
      .entries = {}, .metadata = {}, .data_start = 8 + static_cast<int64_t>(n)};
  for (const auto& [name, info] : j.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) bad(path, "__metadata__ is not an object of strings");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) bad(path, "__metadata__ value of '" + k + "' is not a string");
        layout.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
        !info.contains("data_offsets") || !info["dtype"].is_string() || !info["shape"].is_array() ||
        !info["data_offsets"].is_array() || info["data_offsets"].size() != 2) {
      bad(path, where + "needs dtype, shape and data_offsets [begin, end]");
    }
    SafetensorsEntry e{.name = name, .dtype = info["dtype"].get<std::string>(), .shape = {}};
    if (dtype_bits(e.dtype) == 0) bad(path, where + "unknown dtype '" + e.dtype + "'");
    for (const json& d : info["shape"]) {
      if (!d.is_number_unsigned()) bad(path, where + "shape holds a negative or non-integer size");
      e.shape.push_back(d.get<int64_t>());
    }
    for (int i = 0; i < 2; ++i) {
      if (!info["data_offsets"][i].is_number_unsigned())
        bad(path, where + "data_offsets must be non-negative integers");
    }
    e.begin = info["data_offsets"][0].get<int64_t>();
    e.end = info["data_offsets"][1].get<int64_t>();
    layout.entries.push_back(std::move(e));
  }

  // The byte ranges tile the data buffer: sorted by offset, each begins where
  // the previous ends, from 0, and holds exactly its shape's bytes.
  std::sort(layout.entries.begin(), layout.entries.end(), [](const auto& a, const auto& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  int64_t expected = 0;
  for (const SafetensorsEntry& e : layout.entries) {
    const std::string where = "tensor '" + e.name + "': ";
    if (e.begin != expected) {
      bad(path, where + "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                    "] " + (e.begin < expected ? "overlap" : "leave a gap before") +
                    " the previous tensor (which ends at " + std::to_string(expected) + ")");
    }
    if (e.end < e.begin) bad(path, where + "data_offsets end before they begin");
    std::optional<int64_t> count = 1;
    for (int64_t d : e.shape)
      if (count) count = checked_mul(*count, d);
    const std::optional<int64_t> bits =
        count ? checked_mul(*count, dtype_bits(e.dtype)) : std::nullopt;
    if (!bits) bad(path, where + "shape overflows");
    if (*bits % 8 != 0) bad(path, where + "shape does not fill whole bytes");
    if (e.end - e.begin != *bits / 8) {
      bad(path, where + "holds " + std::to_string(e.end - e.begin) + " bytes, its shape needs " +
                    std::to_string(*bits / 8));
    }
    expected = e.end;
  }
  if (layout.data_start + expected != size) {
    bad(path, "the tensors end at byte " + std::to_string(layout.data_start + expected) +
                  " but the file has " + std::to_string(size) +
                  (layout.data_start + expected > size ? " (truncated)" : " (trailing bytes)"));
  }
  return layout;
}

}  // namespace muse::formats
