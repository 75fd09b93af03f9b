// Reading a config tree from a YAML file and `--set key.path=value`
// overrides, with errors that name the file, line and key at fault.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/schema.h"

namespace muse::config {

// For each dotted key, where its value came from: "default" (absent from the
// map), a file path, or "--set".
using Origins = std::map<std::string, std::string>;

template <class Root>
struct Loaded {
  Root config;
  Origins origins;
};

// "'ten'", "a mapping", "null" ... for error messages.
std::string describe_node(const YAML::Node& node);

// Converts a YAML node to a field's type; false with `why` filled when the node
// holds something else ("expected an integer, got 'ten'").
bool parse_node(const YAML::Node& node, bool& out, std::string& why);
bool parse_node(const YAML::Node& node, int64_t& out, std::string& why);
bool parse_node(const YAML::Node& node, double& out, std::string& why);
bool parse_node(const YAML::Node& node, std::string& out, std::string& why);
template <class T>
bool parse_node(const YAML::Node& node, std::vector<T>& out, std::string& why) {
  if (!node.IsSequence()) {
    why = "expected a list like [a, b], got " + describe_node(node);
    return false;
  }
  std::vector<T> values(node.size());
  for (size_t i = 0; i < node.size(); ++i) {
    if (!parse_node(node[i], values[i], why)) {
      why = "element " + std::to_string(i) + ": " + why;
      return false;
    }
  }
  out = std::move(values);
  return true;
}

// The nearest known key to `key`, or empty when nothing is close enough.
std::string suggest_key(const std::string& key, const std::vector<std::string>& known);

// Throws ConfigError for a key at `origin` (a file or "--set ..."), adding the
// line number when the node has one: "FILE:LINE: key: message".
[[noreturn]] void fail_at(const std::string& origin, const YAML::Node& node, const std::string& key,
                          const std::string& message);

// Errors met while reading a config, in order.
using ConfigErrors = std::vector<ConfigError>;

// Walks a config tree alongside a YAML mapping, assigning the values present
// and rejecting keys the tree does not declare. Each fault is thrown, or,
// given `errors`, added to it and skipped (the key keeps its value) so that
// one reading finds them all.
class YamlApplier {
 public:
  YamlApplier(const YAML::Node& node, std::string prefix, std::string origin, Origins& origins,
              const std::vector<std::string>& known_keys, ConfigErrors* errors = nullptr)
      : node_(node),
        prefix_(std::move(prefix)),
        origin_(std::move(origin)),
        origins_(origins),
        known_keys_(known_keys),
        errors_(errors) {
    check_keys();
  }

  template <class T>
  void field(std::string_view name, T& value, const FieldSpec& spec) {
    names_.emplace_back(name);
    const YAML::Node child = node_[std::string(name)];
    if (!child) return;
    const std::string key = join_key(prefix_, name);
    T parsed{};
    std::string why;
    if (!parse_node(child, parsed, why)) return report(key_node(name), key, why);
    try {
      check_value(key, spec, parsed);
    } catch (const ConfigError& e) {
      return report(key_node(name), key, e.what());
    }
    value = std::move(parsed);
    origins_[key] = origin_;
  }

  template <class S>
  void section(std::string_view name, S& sub, std::string_view /*help*/) {
    names_.emplace_back(name);
    const YAML::Node child = node_[std::string(name)];
    if (!child) return;
    const std::string key = join_key(prefix_, name);
    if (!child.IsMap()) {
      return report(key_node(name), key, "expected a mapping of keys, got " + describe_node(child));
    }
    YamlApplier inner(child, key, origin_, origins_, known_keys_, errors_);
    sub.visit(inner);
    inner.reject_unknown();
  }

  // Reports each key of the mapping that the visited section did not
  // declare, suggesting the nearest declared key.
  void reject_unknown() const;

 private:
  // fail_at's error, thrown or collected.
  void report(const YAML::Node& node, const std::string& key, const std::string& message) const;
  // Keys must be plain, distinct names (yaml-cpp keeps the first of duplicates).
  void check_keys() const;
  // The key node of `name`: errors point at the key's line (an empty value
  // has the position of whatever follows it).
  YAML::Node key_node(std::string_view name) const;

  const YAML::Node node_;
  std::string prefix_;
  std::string origin_;
  Origins& origins_;
  const std::vector<std::string>& known_keys_;
  ConfigErrors* errors_;  // null: throw the first error
  std::vector<std::string> names_;
};

// Every dotted key a tree declares, sections included (for suggestions).
template <class Root>
std::vector<std::string> known_keys() {
  std::vector<std::string> keys;
  for (const auto& s : describe_sections<Root>())
    keys.push_back(s.path);
  for (const auto& f : describe_fields<Root>())
    keys.push_back(f.path);
  return keys;
}

// Reads `path` as a YAML mapping. A file without a single key (empty, or
// only comments) is an error: it would silently mean every default.
YAML::Node load_yaml_file(const std::string& path);

// Turns "a.b=value" into the mapping {a: {b: value}}, the value parsed as YAML.
YAML::Node parse_override(const std::string& assignment);

// Throws the first error, or collects every one into `errors`.
template <class Root>
void apply_yaml(Root& root, const YAML::Node& node, const std::string& origin, Origins& origins,
                ConfigErrors* errors = nullptr) {
  const std::vector<std::string> keys = known_keys<Root>();
  YamlApplier applier(node, "", origin, origins, keys, errors);
  root.visit(applier);
  applier.reject_unknown();
}

// Defaults, then the file (if any), then each override in order, collecting
// every error of the file and of the overrides into `errors`.
template <class Root>
Loaded<Root> read_sources(const std::optional<std::string>& file,
                          const std::vector<std::string>& overrides, ConfigErrors& errors) {
  Loaded<Root> out;
  const auto apply = [&](const std::string& origin, const auto& read_node) {
    try {
      apply_yaml(out.config, read_node(), origin, out.origins, &errors);
    } catch (const ConfigError& e) {  // the source itself cannot be read
      errors.push_back(e);
    }
  };
  if (file.has_value()) {
    // A copy: GCC 12 at -O3 takes *file inside the lambda for uninitialized.
    const std::string path = file.value();
    apply(path, [&] { return load_yaml_file(path); });
  }
  for (const auto& assignment : overrides)
    apply("--set " + assignment, [&] { return parse_override(assignment); });
  return out;
}

// The tree's derived settings (`Root::resolve(Origins&)`, which sees which
// keys were set and may record where derived values came from), then its
// cross-field checks (`Root::validate()`), each stopping at its first
// ConfigError, which is added to `errors` named against the origin of its
// key. Returns false when resolve failed: the derived settings are then
// incomplete and validate() did not run.
template <class Root>
bool resolve_sources(Loaded<Root>& loaded, ConfigErrors& errors) {
  const auto add = [&](const ConfigError& e) {
    const auto it = loaded.origins.find(e.key());
    const std::string origin = it == loaded.origins.end() ? "default" : it->second;
    errors.emplace_back(e.key(), origin + ": " + e.key() + ": " + e.what());
  };
  try {
    // Settings derived from others (presets) may depend on which keys were set.
    if constexpr (requires { loaded.config.resolve(loaded.origins); })
      loaded.config.resolve(loaded.origins);
  } catch (const ConfigError& e) {
    add(e);
    return false;
  }
  try {
    if constexpr (requires { loaded.config.validate(); }) loaded.config.validate();
  } catch (const ConfigError& e) {
    add(e);
  }
  return true;
}

// read_sources then resolve_sources, throwing the first error.
template <class Root>
Loaded<Root> load(const std::optional<std::string>& file,
                  const std::vector<std::string>& overrides) {
  ConfigErrors errors;
  Loaded<Root> out = read_sources<Root>(file, overrides, errors);
  if (errors.empty()) resolve_sources(out, errors);
  if (!errors.empty()) throw errors.front();
  return out;
}

// Fields (in declaration order) as nested YAML with each help text as a
// comment; loading it back gives the same values.
std::string fields_to_yaml(const std::vector<FieldInfo>& fields);

template <class Root>
std::string to_yaml(const Root& root) {
  return fields_to_yaml(describe_fields(root));
}

}  // namespace muse::config
