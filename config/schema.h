// Declaring config fields once.
//
// A config section is a plain struct whose members carry their defaults, plus
// a `visit` member template that names each field with its help text, unit and
// constraints:
//
//   struct RunConfig {
//     std::string name = "run";
//     template <class V> void visit(V& v) {
//       v.field("name", name, {.help = "run name: the run directory is run.dir/NAME"});
//     }
//   };
//
// Every consumer of the declarations is a visitor: the YAML reader, the
// --set overrides, the resolved-config table and YAML writer, `--help` and the
// generated docs/config.md. A field therefore cannot be documented, read or
// printed differently in two places.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace muse::config {

// How one field may be set. All members are optional; bounds are inclusive
// (ge/le) or exclusive (gt/lt), as in pydantic.
struct FieldSpec {
  std::string_view help;
  std::string_view unit = {};
  std::optional<double> ge = {};
  std::optional<double> gt = {};
  std::optional<double> le = {};
  std::optional<double> lt = {};
  std::vector<std::string_view> choices = {};  // allowed values of a string field
};

// A bad config value or key. `key` is the dotted path at fault (may be empty
// for file-level problems); `what()` is the message without the origin.
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string key, const std::string& message)
      : std::runtime_error(message), key_(std::move(key)) {}
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

// The type names shown in --help and the docs.
template <class T>
constexpr std::string_view type_name();
template <>
constexpr std::string_view type_name<bool>() {
  return "bool";
}
template <>
constexpr std::string_view type_name<int64_t>() {
  return "int";
}
template <>
constexpr std::string_view type_name<double>() {
  return "float";
}
template <>
constexpr std::string_view type_name<std::string>() {
  return "string";
}
template <>
constexpr std::string_view type_name<std::vector<int64_t>>() {
  return "list[int]";
}
template <>
constexpr std::string_view type_name<std::vector<double>>() {
  return "list[float]";
}
template <>
constexpr std::string_view type_name<std::vector<std::string>>() {
  return "list[string]";
}

// Checks `value` against the bounds and choices of `spec`; throws ConfigError
// naming `key`. Lists are checked element by element.
void check_value(const std::string& key, const FieldSpec& spec, bool value);
void check_value(const std::string& key, const FieldSpec& spec, int64_t value);
void check_value(const std::string& key, const FieldSpec& spec, double value);
void check_value(const std::string& key, const FieldSpec& spec, const std::string& value);
template <class T>
void check_value(const std::string& key, const FieldSpec& spec, const std::vector<T>& values) {
  for (const auto& v : values)
    check_value(key, spec, v);
}

// Renders a value the way YAML and the table show it (round-trips exactly for
// floats).
std::string format_value(bool value);
std::string format_value(int64_t value);
std::string format_value(double value);
std::string format_value(const std::string& value);
template <class T>
std::string format_value(const std::vector<T>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i)
    out += (i ? ", " : "") + format_value(values[i]);
  return out + "]";
}

// "> 0 and <= 1", "one of a|b" ... or empty when the field is unconstrained.
std::string describe_constraints(const FieldSpec& spec);

// "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
std::string join_key(std::string_view prefix, std::string_view name);

// One declared field, flattened: what --help, the docs, the start-up table and
// key suggestions use.
struct FieldInfo {
  std::string path;  // dotted, e.g. "trainer.steps"
  std::string type;
  std::string value;  // current value, formatted as in YAML
  std::string unit;
  std::string constraints;
  std::string help;
};

struct SectionInfo {
  std::string path;
  std::string help;
};

// Flattens a config tree into its fields and sections, in declaration order.
class Describer {
 public:
  template <class T>
  void field(std::string_view name, T& value, const FieldSpec& spec) {
    fields_.push_back({join_key(prefix_, name), std::string(type_name<T>()), format_value(value),
                       std::string(spec.unit), describe_constraints(spec), std::string(spec.help)});
  }
  template <class S>
  void section(std::string_view name, S& sub, std::string_view help) {
    const std::string outer = prefix_;
    prefix_ = join_key(prefix_, name);
    sections_.push_back({prefix_, std::string(help)});
    sub.visit(*this);
    prefix_ = outer;
  }
  const std::vector<FieldInfo>& fields() const { return fields_; }
  const std::vector<SectionInfo>& sections() const { return sections_; }

 private:
  std::string prefix_;
  std::vector<FieldInfo> fields_;
  std::vector<SectionInfo> sections_;
};

// The fields of `root` with their current values (pass a default-constructed
// tree to get the defaults).
template <class Root>
std::vector<FieldInfo> describe_fields(Root root = {}) {
  Describer d;
  root.visit(d);
  return d.fields();
}

template <class Root>
std::vector<SectionInfo> describe_sections() {
  Root root{};
  Describer d;
  root.visit(d);
  return d.sections();
}

}  // namespace muse::config
