#include "telemetry/metrics.h"

#include "config/files.h"
#include "config/schema.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>

namespace muse::telemetry {

Record& Record::add_value(std::string key, Value value) {
  fields_.emplace_back(std::move(key), std::move(value));
  return *this;
}

const Value* Record::find(std::string_view key) const {
  for (const auto& [k, v] : fields_) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::string json_quote(std::string_view text) {
  return config::format_value(std::string(text));
}

std::string to_json(const Record& record) {
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : record.fields()) {
    if (!first) out += ", ";
    first = false;
    out += json_quote(key) + ": ";
    if (const auto* i = std::get_if<int64_t>(&value)) {
      out += std::to_string(*i);
    } else if (const auto* d = std::get_if<double>(&value)) {
      if (!std::isfinite(*d)) {
        out += "null";
      } else {
        char buf[32];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *d);
        out.append(buf, end);
      }
    } else if (const auto* b = std::get_if<bool>(&value)) {
      out += *b ? "true" : "false";
    } else {
      out += json_quote(std::get<std::string>(value));
    }
  }
  return out + "}";
}

JsonlSink::JsonlSink(const std::string& path) : path_(path), out_(path, std::ios::app) {
  if (!out_)
    throw std::runtime_error(path + ": cannot open for writing (" + std::strerror(errno) + ")");
}

void JsonlSink::write(const Record& record) {
  out_ << to_json(record) << '\n';
  out_.flush();
  if (!out_) throw std::runtime_error(path_ + ": write failed (" + std::strerror(errno) + ")");
}

void JsonlSink::flush() {
  out_.flush();
}

void Metrics::write(const Record& record) {
  for (auto& sink : sinks_)
    sink->write(record);
}

void Metrics::flush() {
  for (auto& sink : sinks_)
    sink->flush();
}

namespace {

// The value of the record's "step" key, or nullopt. Records are written by
// to_json, so the key appears as "step": N.
std::optional<int64_t> step_of(std::string_view line) {
  constexpr std::string_view kKey = "\"step\": ";
  const size_t at = line.find(kKey);
  if (at == std::string_view::npos) return std::nullopt;
  int64_t step = 0;
  const char* begin = line.data() + at + kKey.size();
  if (std::from_chars(begin, line.data() + line.size(), step).ec != std::errc())
    return std::nullopt;
  return step;
}

}  // namespace

void drop_records_after(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  bool dropped = false;
  while (std::getline(in, line)) {
    const std::optional<int64_t> s = step_of(line);
    if (s && *s > step) {
      dropped = true;
      continue;
    }
    kept += line + "\n";
  }
  if (dropped) config::write_file_atomic(path, kept);
}

}  // namespace muse::telemetry
