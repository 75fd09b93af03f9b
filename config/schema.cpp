#include "config/schema.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "config/utf8.h"

namespace muse::config {
namespace {

std::string format_bound(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  return format_value(v);
}

void check_bounds(const std::string& key, const FieldSpec& spec, double value,
                  const std::string& shown) {
  const bool ok = (!spec.ge || value >= *spec.ge) && (!spec.gt || value > *spec.gt) &&
                  (!spec.le || value <= *spec.le) && (!spec.lt || value < *spec.lt);
  if (!ok)
    throw ConfigError(key, shown + " is out of range: must be " + describe_constraints(spec));
}

}  // namespace

std::string join_key(std::string_view prefix, std::string_view name) {
  std::string out(prefix);
  if (!out.empty()) out += '.';
  out += name;
  return out;
}

void check_value(const std::string&, const FieldSpec&, bool) {}

void check_value(const std::string& key, const FieldSpec& spec, int64_t value) {
  check_bounds(key, spec, static_cast<double>(value), format_value(value));
}

void check_value(const std::string& key, const FieldSpec& spec, double value) {
  if (!std::isfinite(value))
    throw ConfigError(key, format_value(value) + " is not a finite number");
  check_bounds(key, spec, value, format_value(value));
}

void check_value(const std::string& key, const FieldSpec& spec, const std::string& value) {
  if (spec.choices.empty()) return;
  for (auto c : spec.choices) {
    if (value == c) return;
  }
  throw ConfigError(key,
                    format_value(value) + " is not allowed: must be " + describe_constraints(spec));
}

std::string format_value(bool value) {
  return value ? "true" : "false";
}

std::string format_value(int64_t value) {
  return std::to_string(value);
}

std::string format_value(double value) {
  if (std::isnan(value)) return ".nan";
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  char buf[64];
  // Shortest text that parses back to the same double.
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  std::string out(buf, end);
  // Keep floats recognisable as floats ("1" would read back as an integer).
  if (out.find_first_of(".en") == std::string::npos) out += ".0";
  return out;
}

// A JSON string, which is also a YAML double-quoted scalar. Both must be
// Unicode: a byte outside well-formed UTF-8 is written as U+FFFD.
std::string format_value(const std::string& value) {
  std::string out = "\"";
  for (unsigned char c : valid_utf8(value, kReplacementCharacter)) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string describe_constraints(const FieldSpec& spec) {
  if (!spec.choices.empty()) {
    std::string out = "one of ";
    for (size_t i = 0; i < spec.choices.size(); ++i) {
      out += (i ? "|" : "") + std::string(spec.choices[i]);
    }
    return out;
  }
  std::string out;
  auto add = [&](const char* op, const std::optional<double>& bound) {
    if (!bound) return;
    if (!out.empty()) out += " and ";
    out += std::string(op) + " " + format_bound(*bound);
  };
  add(">=", spec.ge);
  add(">", spec.gt);
  add("<=", spec.le);
  add("<", spec.lt);
  return out;
}

}  // namespace muse::config
