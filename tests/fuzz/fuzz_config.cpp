// libFuzzer target: the YAML config loader (files and --set overrides) on a
// config tree with every kind of field. Any input must end in a value or a
// ConfigError / YAML error, never a crash.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "config/loader.h"

namespace {

struct Inner {
  int64_t n = 1;
  std::vector<double> xs = {1.0};
  template <class V>
  void visit(V& v) {
    v.field("n", n, {.help = "an int", .ge = 0, .le = 100});
    v.field("xs", xs, {.help = "doubles", .gt = -1});
  }
};

struct Root {
  std::string stage = "a";
  bool flag = false;
  double rate = 0.5;
  std::vector<std::string> tags;
  std::vector<int64_t> ks = {2, 4};
  Inner inner;
  template <class V>
  void visit(V& v) {
    v.field("stage", stage, {.help = "a choice", .choices = {"a", "b"}});
    v.field("flag", flag, {.help = "a bool"});
    v.field("rate", rate, {.help = "a double", .gt = 0, .lt = 1});
    v.field("tags", tags, {.help = "strings"});
    v.field("ks", ks, {.help = "ints", .ge = 1});
    v.section("inner", inner, "a section");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Root root;
  muse::config::Origins origins;
  try {
    muse::config::apply_yaml(root, YAML::Load(text), "fuzz.yaml", origins);
    (void)muse::config::to_yaml(root);
  } catch (const muse::config::ConfigError&) {
  } catch (const YAML::Exception&) {
  }
  try {
    muse::config::apply_yaml(root, muse::config::parse_override(text), "--set", origins);
  } catch (const muse::config::ConfigError&) {
  } catch (const YAML::Exception&) {
  }
  return 0;
}
