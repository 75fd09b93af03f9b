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

// Walks a config tree alongside a YAML mapping, assigning the values present
// and rejecting keys the tree does not declare.
class YamlApplier {
 public:
  YamlApplier(const YAML::Node& node, std::string prefix, std::string origin, Origins& origins,
              const std::vector<std::string>& known_keys)
      : node_(node),
        prefix_(std::move(prefix)),
        origin_(std::move(origin)),
        origins_(origins),
        known_keys_(known_keys) {
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
    if (!parse_node(child, parsed, why)) fail_at(origin_, key_node(name), key, why);
    try {
      check_value(key, spec, parsed);
    } catch (const ConfigError& e) {
      fail_at(origin_, key_node(name), key, e.what());
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
      fail_at(origin_, key_node(name), key,
              "expected a mapping of keys, got " + describe_node(child));
    }
    YamlApplier inner(child, key, origin_, origins_, known_keys_);
    sub.visit(inner);
    inner.reject_unknown();
  }

  // Fails on the first key of the mapping that the visited section did not
  // declare, suggesting the nearest declared key.
  void reject_unknown() const;

 private:
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

// Reads `path` as a YAML mapping (an empty file is an empty mapping).
YAML::Node load_yaml_file(const std::string& path);

// Turns "a.b=value" into the mapping {a: {b: value}}, the value parsed as YAML.
YAML::Node parse_override(const std::string& assignment);

template <class Root>
void apply_yaml(Root& root, const YAML::Node& node, const std::string& origin, Origins& origins) {
  const std::vector<std::string> keys = known_keys<Root>();
  YamlApplier applier(node, "", origin, origins, keys);
  root.visit(applier);
  applier.reject_unknown();
}

// Defaults, then the file (if any), then each override in order; then the
// tree's derived settings (`Root::resolve(Origins&)`, which sees which keys
// were set and may record where derived values came from); finally its
// cross-field checks (`Root::validate()`). A ConfigError of either names its
// key and is reported against the origin of that key.
template <class Root>
Loaded<Root> load(const std::optional<std::string>& file,
                  const std::vector<std::string>& overrides) {
  Loaded<Root> out;
  if (file) apply_yaml(out.config, load_yaml_file(*file), *file, out.origins);
  for (const auto& assignment : overrides) {
    apply_yaml(out.config, parse_override(assignment), "--set " + assignment, out.origins);
  }
  try {
    // Settings derived from others (presets) may depend on which keys were set.
    if constexpr (requires { out.config.resolve(out.origins); }) out.config.resolve(out.origins);
    if constexpr (requires { out.config.validate(); }) out.config.validate();
  } catch (const ConfigError& e) {
    const auto it = out.origins.find(e.key());
    const std::string origin = it == out.origins.end() ? "default" : it->second;
    throw ConfigError(e.key(), origin + ": " + e.key() + ": " + e.what());
  }
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
