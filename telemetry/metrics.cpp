#include "telemetry/metrics.h"

#include "config/schema.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
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

}  // namespace muse::telemetry
