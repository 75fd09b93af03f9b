#include "config/loader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace muse::config {
namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string leaf(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

}  // namespace

std::string describe_node(const YAML::Node& node) {
  if (!node || node.IsNull()) return "nothing (null)";
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  return "'" + node.Scalar() + "'";
}

bool parse_node(const YAML::Node& node, bool& out, std::string& why) {
  if (node.IsScalar() && YAML::convert<bool>::decode(node, out)) return true;
  why = "expected true or false, got " + describe_node(node);
  return false;
}

bool parse_node(const YAML::Node& node, int64_t& out, std::string& why) {
  if (node.IsScalar() && node.Tag() != "!" && YAML::convert<int64_t>::decode(node, out)) {
    return true;
  }
  why = "expected an integer, got " + describe_node(node);
  double as_number = 0;
  if (node.IsScalar() && node.Tag() != "!" && YAML::convert<double>::decode(node, as_number)) {
    why += " (not a whole number)";
  }
  return false;
}

bool parse_node(const YAML::Node& node, double& out, std::string& why) {
  if (node.IsScalar() && node.Tag() != "!" && YAML::convert<double>::decode(node, out)) return true;
  why = "expected a number, got " + describe_node(node);
  return false;
}

bool parse_node(const YAML::Node& node, std::string& out, std::string& why) {
  if (node.IsNull()) {  // `key:` with nothing after it means the empty string
    out.clear();
    return true;
  }
  if (node.IsScalar()) {
    out = node.Scalar();
    return true;
  }
  why = "expected a string, got " + describe_node(node);
  return false;
}

std::string suggest_key(const std::string& key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = std::string::npos;
  for (const auto& candidate : known) {
    // The same leaf under another section is the likeliest intent.
    size_t d = leaf(candidate) == leaf(key) ? 1 : edit_distance(key, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  const size_t limit = std::max<size_t>(2, key.size() / 3);
  return best_distance <= limit ? best : "";
}

void fail_at(const std::string& origin, const YAML::Node& node, const std::string& key,
             const std::string& message) {
  std::string where = origin;
  // Marks are only meaningful for nodes parsed from a file, not for overrides.
  if (origin.rfind("--set", 0) != 0 && node.Mark().line >= 0) {
    where += ":" + std::to_string(node.Mark().line + 1);
  }
  throw ConfigError(key, where + ": " + (key.empty() ? "" : key + ": ") + message);
}

void YamlApplier::report(const YAML::Node& node, const std::string& key,
                         const std::string& message) const {
  try {
    fail_at(origin_, node, key, message);
  } catch (const ConfigError& e) {
    if (errors_ == nullptr) throw;
    errors_->push_back(e);
  }
}

void YamlApplier::check_keys() const {
  std::map<std::string, int> lines;
  for (const auto& entry : node_) {
    if (!entry.first.IsScalar()) {
      report(entry.first, prefix_, "keys must be plain names, got " + describe_node(entry.first));
      continue;
    }
    const std::string name = entry.first.Scalar();
    const auto [it, fresh] = lines.emplace(name, entry.first.Mark().line + 1);
    if (!fresh) {
      report(entry.first, join_key(prefix_, name),
             "duplicate key (first set on line " + std::to_string(it->second) + ")");
    }
  }
}

YAML::Node YamlApplier::key_node(std::string_view name) const {
  for (const auto& entry : node_) {
    if (entry.first.Scalar() == name) return entry.first;
  }
  return node_;
}

void YamlApplier::reject_unknown() const {
  for (const auto& entry : node_) {
    if (!entry.first.IsScalar()) continue;  // check_keys reported it
    const std::string name = entry.first.Scalar();
    if (std::find(names_.begin(), names_.end(), name) != names_.end()) continue;
    const std::string key = join_key(prefix_, name);
    const std::string suggestion = suggest_key(key, known_keys_);
    report(entry.first, key,
           "unknown key" + (suggestion.empty() ? "" : " (did you mean '" + suggestion + "'?)"));
  }
}

YAML::Node load_yaml_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError("", path + ": is a directory, not a config file");
  }
  std::ifstream in(path);
  if (!in) throw ConfigError("", path + ": cannot open config file (" + std::strerror(errno) + ")");
  YAML::Node root;
  try {
    root = YAML::Load(in);
  } catch (const YAML::Exception& e) {
    throw ConfigError("",
                      path + ":" + std::to_string(e.mark.line + 1) + ": malformed YAML: " + e.msg);
  } catch (const std::exception& e) {
    throw ConfigError("", path + ": cannot read config file (" + e.what() + ")");
  }
  if (!root || root.IsNull()) {
    throw ConfigError("", path +
                              ": the config is empty (no key is set; every setting would be its "
                              "default)");
  }
  if (!root.IsMap()) {
    throw ConfigError(
        "", path + ": the top level must be a mapping of keys, got " + describe_node(root));
  }
  return root;
}

YAML::Node parse_override(const std::string& assignment) {
  const std::string origin = "--set " + assignment;
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw ConfigError("", origin + ": expected key.path=value");
  }
  const std::string key = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError(key, origin + ": " + key + ": malformed value: " + e.msg);
  }
  // Build {a: {b: value}} from the innermost key outwards.
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string part; std::getline(ss, part, '.');) {
    if (part.empty()) throw ConfigError(key, origin + ": '" + key + "' is not a key path");
    parts.push_back(part);
  }
  if (key.back() == '.') throw ConfigError(key, origin + ": '" + key + "' is not a key path");
  YAML::Node node = value;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    YAML::Node outer(YAML::NodeType::Map);
    outer[*it] = node;
    node = outer;
  }
  return node;
}

std::string fields_to_yaml(const std::vector<FieldInfo>& fields) {
  std::ostringstream out;
  std::vector<std::string> open;  // sections currently open, outermost first
  for (const auto& f : fields) {
    std::vector<std::string> parts;
    std::stringstream ss(f.path);
    for (std::string part; std::getline(ss, part, '.');)
      parts.push_back(part);
    const std::string name = parts.back();
    parts.pop_back();
    size_t common = 0;
    while (common < open.size() && common < parts.size() && open[common] == parts[common]) {
      ++common;
    }
    open.resize(common);
    for (size_t i = common; i < parts.size(); ++i) {
      out << std::string(2 * i, ' ') << parts[i] << ":\n";
      open.push_back(parts[i]);
    }
    out << std::string(2 * parts.size(), ' ') << name << ": " << f.value << "  # " << f.help
        << "\n";
  }
  return out.str();
}

}  // namespace muse::config
