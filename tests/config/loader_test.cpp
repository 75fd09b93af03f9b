// Tests of config/loader.h: defaults, YAML files, origins, YAML round trips,
// node parsing and key suggestions.
#include "config/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "apps/muse_config.h"
#include "tests/temp_dir.h"

namespace muse::config {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using muse::testing::TempDir;

template <class F>
ConfigError expect_config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ConfigError, got another exception: " << e.what();
    return ConfigError("<wrong exception>", e.what());
  }
  ADD_FAILURE() << "expected ConfigError, nothing was thrown";
  return ConfigError("<nothing thrown>", "");
}

// The origins of keys set by a file or --set (model.* keys the preset
// filled in are recorded as "preset NAME" and left out here).
Origins set_by_user(const Origins& origins) {
  Origins out;
  for (const auto& [key, origin] : origins) {
    if (origin.rfind("preset ", 0) != 0) out.emplace(key, origin);
  }
  return out;
}

// --- defaults --------------------------------------------------------------------

TEST(Load, DefaultsWithoutFileOrOverrides) {
  const auto loaded = load<MuseConfig>(std::nullopt, {});
  const MuseConfig& c = loaded.config;
  EXPECT_EQ(c.stage, "pretrain");
  EXPECT_EQ(c.seed, 1234);
  EXPECT_EQ(c.init_from, "");
  EXPECT_EQ(c.run.name, "run");
  EXPECT_EQ(c.run.dir, "runs");
  EXPECT_EQ(c.trainer.steps, 100);
  EXPECT_EQ(c.optim.lr, 3e-4);
  EXPECT_EQ(c.optim.weight_decay, 0.1);
  EXPECT_EQ(c.checkpoint.every, 100);
  EXPECT_EQ(c.checkpoint.keep, 2);
  EXPECT_EQ(c.dist.backend, "auto");
  EXPECT_EQ(c.dist.collective_timeout_s, 300.0);
  EXPECT_TRUE(c.dist.verify_collectives);
  EXPECT_EQ(c.telemetry.log_every, 1);
  EXPECT_EQ(c.telemetry.progress, "auto");
  // Nothing came from anywhere but the defaults and the default model preset.
  EXPECT_TRUE(set_by_user(loaded.origins).empty());
  EXPECT_EQ(loaded.origins.at("model.dim"), "preset tiny");
  // The same as a default-constructed tree, key for key.
  EXPECT_EQ(to_yaml(c), to_yaml(MuseConfig{}));
}

// A file that sets nothing would silently mean every default.
TEST(Load, EmptyFileIsAnError) {
  TempDir dir;
  for (const std::string text : {"", "\n", "# only a comment\n", "# one\n\n  # two\n", "---\n"}) {
    const std::string path = dir.write("empty.yaml", text);
    const ConfigError e = expect_config_error([&] { load<MuseConfig>(path, {}); });
    EXPECT_EQ(std::string(e.what()), path +
                                         ": the config is empty (no key is set; every setting "
                                         "would be its default)")
        << "file text: " << text;
  }
}

// read_sources goes on past an error: every wrong key of the file and of the
// overrides, in order, each with its origin; the good keys are applied.
TEST(ReadSources, CollectsEveryError) {
  TempDir dir;
  const std::string path = dir.write("many.yaml", R"(seed: -1
trainer:
  stpes: 5
  steps: 7
  grad_accum: many
dist: mpi
)");
  ConfigErrors errors;
  const auto loaded = read_sources<MuseConfig>(
      path, {"optim.lr=0", "run.name=fine", "nosuch=1", "trainer.steps"}, errors);
  std::vector<std::string> messages;
  for (const ConfigError& e : errors)
    messages.push_back(e.what());
  EXPECT_THAT(messages, ::testing::ElementsAre(
                            path + ":1: seed: -1 is out of range: must be >= 0",
                            path + ":5: trainer.grad_accum: expected an integer, got 'many'",
                            path + ":3: trainer.stpes: unknown key (did you mean 'trainer.steps'?)",
                            path + ":6: dist: expected a mapping of keys, got 'mpi'",
                            "--set optim.lr=0: optim.lr: 0.0 is out of range: must be > 0",
                            "--set nosuch=1: nosuch: unknown key",
                            "--set trainer.steps: expected key.path=value"));
  EXPECT_EQ(loaded.config.trainer.steps, 7);
  EXPECT_EQ(loaded.config.run.name, "fine");
  EXPECT_EQ(loaded.config.seed, MuseConfig{}.seed);
  // load() reports the first of them.
  const ConfigError first = expect_config_error([&] { load<MuseConfig>(path, {}); });
  EXPECT_EQ(std::string(first.what()), messages.front());
}

// A validate() error is collected after a sound resolve; the loaded config
// stays usable for further checks.
TEST(ResolveSources, CollectsTheCrossFieldError) {
  ConfigErrors errors;
  auto loaded = read_sources<MuseConfig>(std::nullopt, {"data.seq_len=512"}, errors);
  ASSERT_TRUE(errors.empty());
  EXPECT_TRUE(resolve_sources(loaded, errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(std::string(errors[0].what()),
            "--set data.seq_len=512: data.seq_len: 512 is longer than model.max_seq_len (256)");
}

// --- a good file and --set ------------------------------------------------------------

constexpr const char* kGoodYaml = R"(# A complete, valid config.
stage: sft
seed: 7
run:
  name: exp-42
trainer:
  steps: 500
dist:
  collective_timeout_s: 12.5
  verify_collectives: false
telemetry:
  progress: lines
)";

TEST(Load, FileSetsValuesAndOrigins) {
  TempDir dir;
  const std::string path = dir.write("good.yaml", kGoodYaml);
  const auto loaded = load<MuseConfig>(path, {});
  const MuseConfig& c = loaded.config;
  EXPECT_EQ(c.stage, "sft");
  EXPECT_EQ(c.seed, 7);
  EXPECT_EQ(c.run.name, "exp-42");
  EXPECT_EQ(c.trainer.steps, 500);
  EXPECT_EQ(c.dist.collective_timeout_s, 12.5);
  EXPECT_FALSE(c.dist.verify_collectives);
  EXPECT_EQ(c.telemetry.progress, "lines");
  // Keys absent from the file keep their defaults.
  EXPECT_EQ(c.run.dir, "runs");
  EXPECT_EQ(c.checkpoint.every, 100);
  EXPECT_EQ(c.dist.backend, "auto");

  const Origins expected = {
      {"stage", path},
      {"seed", path},
      {"run.name", path},
      {"trainer.steps", path},
      {"dist.collective_timeout_s", path},
      {"dist.verify_collectives", path},
      {"telemetry.progress", path},
  };
  EXPECT_EQ(set_by_user(loaded.origins), expected);
}

TEST(Load, OverridesWinOverTheFileInOrder) {
  TempDir dir;
  const std::string path = dir.write("good.yaml", kGoodYaml);
  const auto loaded =
      load<MuseConfig>(path, {"trainer.steps=7", "seed=1", "trainer.steps=9", "checkpoint.keep=5"});
  const MuseConfig& c = loaded.config;
  EXPECT_EQ(c.trainer.steps, 9);  // the later --set wins
  EXPECT_EQ(c.seed, 1);
  EXPECT_EQ(c.checkpoint.keep, 5);
  EXPECT_EQ(c.stage, "sft");  // from the file, not overridden
  EXPECT_EQ(loaded.origins.at("trainer.steps"), "--set trainer.steps=9");
  EXPECT_EQ(loaded.origins.at("seed"), "--set seed=1");
  EXPECT_EQ(loaded.origins.at("checkpoint.keep"), "--set checkpoint.keep=5");
  EXPECT_EQ(loaded.origins.at("stage"), path);
  EXPECT_EQ(loaded.origins.at("run.name"), path);
  EXPECT_EQ(loaded.origins.count("checkpoint.every"), 0u);
}

TEST(Load, OverridesWithoutFile) {
  const auto loaded = load<MuseConfig>(
      std::nullopt, {"stage=rl", "dist.collective_timeout_s=0.5", "dist.verify_collectives=false",
                     "init_from=runs/tiny:v2", "run.name=a b c"});
  EXPECT_EQ(loaded.config.stage, "rl");
  EXPECT_EQ(loaded.config.dist.collective_timeout_s, 0.5);
  EXPECT_FALSE(loaded.config.dist.verify_collectives);
  EXPECT_EQ(loaded.config.init_from, "runs/tiny:v2");
  EXPECT_EQ(loaded.config.run.name, "a b c");
  EXPECT_EQ(set_by_user(loaded.origins).size(), 5u);
  EXPECT_EQ(loaded.origins.at("init_from"), "--set init_from=runs/tiny:v2");
}

TEST(Load, OverrideCanSetAWholeSection) {
  const auto loaded = load<MuseConfig>(std::nullopt, {"checkpoint={every: 3, keep: 4}"});
  EXPECT_EQ(loaded.config.checkpoint.every, 3);
  EXPECT_EQ(loaded.config.checkpoint.keep, 4);
  EXPECT_EQ(loaded.origins.at("checkpoint.every"), "--set checkpoint={every: 3, keep: 4}");
  EXPECT_EQ(loaded.origins.at("checkpoint.keep"), "--set checkpoint={every: 3, keep: 4}");
}

TEST(Load, ValidateErrorNamesTheOriginOfTheKey) {
  TempDir dir;
  const std::string path = dir.write("slash.yaml", "run:\n  name: a/b\n");
  const ConfigError e = expect_config_error([&] { load<MuseConfig>(path, {}); });
  EXPECT_EQ(e.key(), "run.name");
  EXPECT_EQ(std::string(e.what()), path + ": run.name: \"a/b\" is not a directory name");
  // A --set that fixes the name makes the file acceptable.
  EXPECT_EQ(load<MuseConfig>(path, {"run.name=ab"}).config.run.name, "ab");
}

// --- missing and unreadable files ----------------------------------------------------------

TEST(Load, MissingFileNamesThePath) {
  const std::string path = "tests/config/no_such_config.yaml";
  const ConfigError e = expect_config_error([&] { load<MuseConfig>(path, {}); });
  EXPECT_EQ(e.key(), "");
  EXPECT_THAT(e.what(), StartsWith(path + ": cannot open config file"));
  EXPECT_THAT(e.what(), HasSubstr("No such file or directory"));
}

// A directory given as the config file is a ConfigError naming the path.
TEST(Load, DirectoryAsConfigFileNamesThePath) {
  TempDir dir;
  const std::string path = dir.path().string();
  const ConfigError e = expect_config_error([&] { load<MuseConfig>(path, {}); });
  EXPECT_THAT(e.what(), HasSubstr(path));
}

// A key that is not a plain name is a ConfigError naming the file.
TEST(Load, NonScalarKeyIsAConfigErrorNamingTheFile) {
  TempDir dir;
  const std::string path = dir.write("complex_key.yaml", "stage: sft\n[a, b]: 1\n");
  const ConfigError e = expect_config_error([&] { load<MuseConfig>(path, {}); });
  EXPECT_THAT(e.what(), StartsWith(path + ":2: "));
}

// An empty value is reported at its key's line (yaml-cpp places it on the next).
TEST(Load, KeyWithoutValueIsReportedAtItsOwnLine) {
  TempDir dir;
  const std::string path =
      dir.write("null_value.yaml", "stage: sft\ntrainer:\n  steps:\nseed: 4\n");
  const ConfigError e = expect_config_error([&] { load<MuseConfig>(path, {}); });
  EXPECT_EQ(e.key(), "trainer.steps");
  EXPECT_EQ(std::string(e.what()),
            path + ":3: trainer.steps: expected an integer, got nothing (null)");
}

// --- round trip through to_yaml ------------------------------------------------------------

MuseConfig non_default_config() {
  MuseConfig c;
  c.stage = "rl";
  c.seed = 987654321;
  c.init_from = "models/a b: \"quoted\" # not a comment \\ back";
  c.run.name = "exp: 1 #2";
  c.run.dir = "/tmp/runs 'single' [x] {y} ~ null";
  c.trainer.steps = 1;
  c.optim.lr = 1e-7;
  c.optim.weight_decay = 0.0;
  c.checkpoint.every = 7;
  c.checkpoint.keep = 3;
  c.dist.backend = "mpi";
  c.dist.collective_timeout_s = 0.1;
  c.dist.verify_collectives = false;
  c.telemetry.log_every = 10;
  c.telemetry.progress = "off";
  return c;
}

TEST(RoundTrip, MuseConfigThroughAFile) {
  for (double timeout : {0.1, 1e-7, 1.0, 1e20, 1.0 / 3}) {
    MuseConfig c = non_default_config();
    c.dist.collective_timeout_s = timeout;
    const std::string text = to_yaml(c);
    ASSERT_NE(text, to_yaml(MuseConfig{}));
    TempDir dir;
    const std::string path = dir.write("resolved.yaml", text);
    const auto loaded = load<MuseConfig>(path, {});
    EXPECT_EQ(to_yaml(loaded.config), text);
    const MuseConfig& back = loaded.config;
    EXPECT_EQ(back.dist.collective_timeout_s, timeout);
    EXPECT_EQ(back.optim.lr, 1e-7);
    EXPECT_EQ(back.optim.weight_decay, 0.0);
    EXPECT_EQ(back.init_from, c.init_from);
    EXPECT_EQ(back.run.name, c.run.name);
    EXPECT_EQ(back.run.dir, c.run.dir);
    EXPECT_EQ(back.stage, "rl");
    EXPECT_EQ(back.seed, 987654321);
    EXPECT_FALSE(back.dist.verify_collectives);
    // Every key was written, so every key now comes from the file.
    EXPECT_EQ(loaded.origins.size(), describe_fields<MuseConfig>().size());
  }
}

TEST(RoundTrip, DefaultsText) {
  const std::string text = to_yaml(MuseConfig{});
  // Sections are nested; floats stay floats; strings are quoted; help is a comment.
  EXPECT_THAT(text, StartsWith("stage: \"pretrain\"  # "));
  EXPECT_THAT(text, HasSubstr("\ntrainer:\n  steps: 100  # optimizer steps to train for\n"));
  EXPECT_THAT(text, HasSubstr("\n  collective_timeout_s: 300.0  # "));
  EXPECT_THAT(text, HasSubstr("\n  verify_collectives: true  # "));
  EXPECT_THAT(text, HasSubstr("\ninit_from: \"\"  # "));
}

// A tree with every field type, two levels deep.
struct Inner {
  double lr = 3e-4;
  std::vector<double> betas = {0.9, 0.95};
  std::vector<std::string> words;

  template <class V>
  void visit(V& v) {
    v.field("lr", lr, {.help = "learning rate"});
    v.field("betas", betas, {.help = "betas"});
    v.field("words", words, {.help = "words"});
  }
};

struct Outer {
  Inner inner;
  std::vector<int64_t> ids;

  template <class V>
  void visit(V& v) {
    v.section("inner", inner, "inner");
    v.field("ids", ids, {.help = "ids"});
  }
};

struct AllTypes {
  bool flag = false;
  int64_t count = 0;
  double ratio = 0.5;
  std::string text = "x";
  Outer outer;
  std::string last = "end";

  template <class V>
  void visit(V& v) {
    v.field("flag", flag, {.help = "a bool"});
    v.field("count", count, {.help = "an int"});
    v.field("ratio", ratio, {.help = "a float"});
    v.field("text", text, {.help = "a string: with a colon # and a hash"});
    v.section("outer", outer, "outer");
    v.field("last", last, {.help = "after a section"});
  }
};

TEST(RoundTrip, EveryFieldType) {
  AllTypes t;
  t.flag = true;
  t.count = std::numeric_limits<int64_t>::min();
  t.ratio = 1e-7;
  t.text = "  say \"hi\": a#b # c \\d\ttab\nnew line  ";
  t.outer.inner.lr = 0.1;
  t.outer.inner.betas = {0.1, 1e-7, 1e300, -0.0, 2.0, DBL_MIN, 0.1 + 0.2};
  t.outer.inner.words = {"", "a b", "c,d", "[e]", "#f", "g: h", "true", "null", "~", "'q'"};
  t.outer.ids = {-1, 0, std::numeric_limits<int64_t>::max()};
  t.last = "yes";

  const std::string text = to_yaml(t);
  TempDir dir;
  const std::string path = dir.write("all.yaml", text);
  const auto loaded = load<AllTypes>(path, {});
  EXPECT_EQ(to_yaml(loaded.config), text);
  const AllTypes& b = loaded.config;
  EXPECT_TRUE(b.flag);
  EXPECT_EQ(b.count, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(b.ratio, 1e-7);
  EXPECT_EQ(b.text, t.text);
  EXPECT_EQ(b.outer.inner.lr, 0.1);
  EXPECT_EQ(b.outer.inner.betas, t.outer.inner.betas);
  EXPECT_TRUE(std::signbit(b.outer.inner.betas[3]));
  EXPECT_EQ(b.outer.inner.words, t.outer.inner.words);
  EXPECT_EQ(b.outer.ids, t.outer.ids);
  EXPECT_EQ(b.last, "yes");  // a string, not the bool `yes`
}

TEST(RoundTrip, EmptyLists) {
  AllTypes t;
  t.outer.inner.betas.clear();
  const std::string text = to_yaml(t);
  EXPECT_THAT(text, HasSubstr("    betas: []  # betas\n"));
  TempDir dir;
  const auto loaded = load<AllTypes>(dir.write("empty_lists.yaml", text), {});
  EXPECT_TRUE(loaded.config.outer.inner.betas.empty());
  EXPECT_EQ(to_yaml(loaded.config), text);
}

TEST(RoundTrip, ListsFromFileAndOverride) {
  TempDir dir;
  const std::string path = dir.write(
      "lists.yaml", "outer:\n  ids: [3, 4]\n  inner:\n    betas:\n      - 0.5\n      - 1\n");
  const auto loaded = load<AllTypes>(path, {"outer.inner.words=[a, 'b c']"});
  EXPECT_EQ(loaded.config.outer.ids, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(loaded.config.outer.inner.betas, (std::vector<double>{0.5, 1.0}));
  EXPECT_EQ(loaded.config.outer.inner.words, (std::vector<std::string>{"a", "b c"}));
  EXPECT_EQ(loaded.origins.at("outer.inner.words"), "--set outer.inner.words=[a, 'b c']");

  const std::string bad = dir.write("bad_list.yaml", "outer:\n  ids: [1, x, 3]\n");
  const ConfigError e = expect_config_error([&] { load<AllTypes>(bad, {}); });
  EXPECT_EQ(e.key(), "outer.ids");
  EXPECT_EQ(std::string(e.what()), bad + ":2: outer.ids: element 1: expected an integer, got 'x'");
}

// --- parse_node and describe_node -----------------------------------------------------------

TEST(ParseNode, Bool) {
  bool b = false;
  std::string why;
  EXPECT_TRUE(parse_node(YAML::Load("true"), b, why));
  EXPECT_TRUE(b);
  EXPECT_TRUE(parse_node(YAML::Load("false"), b, why));
  EXPECT_FALSE(b);
  EXPECT_FALSE(parse_node(YAML::Load("maybe"), b, why));
  EXPECT_EQ(why, "expected true or false, got 'maybe'");
  EXPECT_FALSE(parse_node(YAML::Load("[true]"), b, why));
  EXPECT_EQ(why, "expected true or false, got a list");
  EXPECT_FALSE(parse_node(YAML::Load("1"), b, why));
}

TEST(ParseNode, Int) {
  int64_t i = 0;
  std::string why;
  EXPECT_TRUE(parse_node(YAML::Load("42"), i, why));
  EXPECT_EQ(i, 42);
  EXPECT_TRUE(parse_node(YAML::Load("-7"), i, why));
  EXPECT_EQ(i, -7);
  EXPECT_TRUE(parse_node(YAML::Load("9223372036854775807"), i, why));
  EXPECT_EQ(i, std::numeric_limits<int64_t>::max());

  EXPECT_FALSE(parse_node(YAML::Load("1.5"), i, why));
  EXPECT_EQ(why, "expected an integer, got '1.5' (not a whole number)");
  EXPECT_FALSE(parse_node(YAML::Load("1e3"), i, why));
  EXPECT_EQ(why, "expected an integer, got '1e3' (not a whole number)");
  EXPECT_FALSE(parse_node(YAML::Load("many"), i, why));
  EXPECT_EQ(why, "expected an integer, got 'many'");
  EXPECT_FALSE(parse_node(YAML::Load("\"5\""), i, why));  // a quoted string is a string
  EXPECT_EQ(why, "expected an integer, got '5'");
  EXPECT_FALSE(parse_node(YAML::Load("99999999999999999999"), i, why));
  EXPECT_FALSE(parse_node(YAML::Load("{a: 1}"), i, why));
  EXPECT_EQ(why, "expected an integer, got a mapping");
  EXPECT_FALSE(parse_node(YAML::Load("~"), i, why));
  EXPECT_EQ(why, "expected an integer, got nothing (null)");
}

// "(not a whole number)" follows only text that is a number.
TEST(ParseNode, IntHintOnlyForFractions) {
  int64_t i = 0;
  std::string why;
  EXPECT_FALSE(parse_node(YAML::Load("ten"), i, why));
  EXPECT_EQ(why, "expected an integer, got 'ten'");
  EXPECT_FALSE(parse_node(YAML::Load("none"), i, why));
  EXPECT_EQ(why, "expected an integer, got 'none'");
  EXPECT_FALSE(parse_node(YAML::Load("2.0"), i, why));
  EXPECT_EQ(why, "expected an integer, got '2.0' (not a whole number)");
}

TEST(ParseNode, Float) {
  double d = 0;
  std::string why;
  EXPECT_TRUE(parse_node(YAML::Load("0.1"), d, why));
  EXPECT_EQ(d, 0.1);
  EXPECT_TRUE(parse_node(YAML::Load("3"), d, why));  // an integer is a number
  EXPECT_EQ(d, 3.0);
  EXPECT_TRUE(parse_node(YAML::Load("1e-07"), d, why));
  EXPECT_EQ(d, 1e-7);
  EXPECT_FALSE(parse_node(YAML::Load("fast"), d, why));
  EXPECT_EQ(why, "expected a number, got 'fast'");
  EXPECT_FALSE(parse_node(YAML::Load("\"0.5\""), d, why));
  EXPECT_FALSE(parse_node(YAML::Load("[1.0]"), d, why));
  EXPECT_EQ(why, "expected a number, got a list");
}

TEST(ParseNode, String) {
  std::string s;
  std::string why;
  EXPECT_TRUE(parse_node(YAML::Load("hello world"), s, why));
  EXPECT_EQ(s, "hello world");
  EXPECT_TRUE(parse_node(YAML::Load("42"), s, why));
  EXPECT_EQ(s, "42");
  EXPECT_TRUE(parse_node(YAML::Load("~"), s, why));  // `key:` with nothing is ""
  EXPECT_EQ(s, "");
  EXPECT_FALSE(parse_node(YAML::Load("{a: 1}"), s, why));
  EXPECT_EQ(why, "expected a string, got a mapping");
  EXPECT_FALSE(parse_node(YAML::Load("[a]"), s, why));
  EXPECT_EQ(why, "expected a string, got a list");
}

TEST(ParseNode, Lists) {
  std::vector<int64_t> ints = {9};
  std::string why;
  EXPECT_TRUE(parse_node(YAML::Load("[1, 2, 3]"), ints, why));
  EXPECT_EQ(ints, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(parse_node(YAML::Load("[]"), ints, why));
  EXPECT_TRUE(ints.empty());
  ints = {9};
  EXPECT_FALSE(parse_node(YAML::Load("[1, 2.5]"), ints, why));
  EXPECT_EQ(why, "element 1: expected an integer, got '2.5' (not a whole number)");
  EXPECT_EQ(ints, (std::vector<int64_t>{9}));  // untouched on failure
  EXPECT_FALSE(parse_node(YAML::Load("3"), ints, why));
  EXPECT_EQ(why, "expected a list like [a, b], got '3'");
}

TEST(DescribeNode, Kinds) {
  EXPECT_EQ(describe_node(YAML::Node()), "nothing (null)");
  EXPECT_EQ(describe_node(YAML::Load("~")), "nothing (null)");
  EXPECT_EQ(describe_node(YAML::Load("{a: 1}")), "a mapping");
  EXPECT_EQ(describe_node(YAML::Load("[1]")), "a list");
  EXPECT_EQ(describe_node(YAML::Load("ten")), "'ten'");
}

// --- suggestions ----------------------------------------------------------------------------

TEST(SuggestKey, CloseTyposAreSuggested) {
  const std::vector<std::string> known = known_keys<MuseConfig>();
  EXPECT_EQ(suggest_key("trainer.stpes", known), "trainer.steps");
  EXPECT_EQ(suggest_key("trainer.step", known), "trainer.steps");
  EXPECT_EQ(suggest_key("trainr", known), "trainer");
  EXPECT_EQ(suggest_key("sed", known), "seed");
  EXPECT_EQ(suggest_key("stage_", known), "stage");
  EXPECT_EQ(suggest_key("dist.colective_timeout_s", known), "dist.collective_timeout_s");
  EXPECT_EQ(suggest_key("checkpoint.kep", known), "checkpoint.keep");
}

TEST(SuggestKey, SameLeafUnderAnotherSection) {
  const std::vector<std::string> known = known_keys<MuseConfig>();
  EXPECT_EQ(suggest_key("trainer.every", known), "checkpoint.every");
  EXPECT_EQ(suggest_key("steps", known), "trainer.steps");
  EXPECT_EQ(suggest_key("run.seed", known), "seed");
  EXPECT_EQ(suggest_key("dist.progress", known), "telemetry.progress");
}

TEST(SuggestKey, FarKeysAreNotSuggested) {
  const std::vector<std::string> known = known_keys<MuseConfig>();
  EXPECT_EQ(suggest_key("learning_rate", known), "");
  EXPECT_EQ(suggest_key("zzz", known), "");
  EXPECT_EQ(suggest_key("qqqq.zzzz", known), "");
  EXPECT_EQ(suggest_key("xyzzy", known), "");
  EXPECT_EQ(suggest_key("x", {"abcdef"}), "");
  EXPECT_EQ(suggest_key("anything", {}), "");
}

TEST(KnownKeys, SectionsAndFields) {
  const std::vector<std::string> known = known_keys<MuseConfig>();
  for (const std::string key : {"stage",
                                "seed",
                                "init_from",
                                "run",
                                "run.name",
                                "run.dir",
                                "trainer",
                                "trainer.steps",
                                "optim",
                                "optim.lr",
                                "optim.weight_decay",
                                "checkpoint",
                                "checkpoint.every",
                                "checkpoint.keep",
                                "dist",
                                "dist.backend",
                                "dist.collective_timeout_s",
                                "dist.verify_collectives",
                                "telemetry",
                                "telemetry.log_every",
                                "telemetry.progress"}) {
    EXPECT_NE(std::find(known.begin(), known.end(), key), known.end()) << key;
  }
}

// --- fail_at ------------------------------------------------------------------------------

TEST(FailAt, AddsTheLineForFilesOnly) {
  const YAML::Node root = YAML::Load("a: 1\nb: 2\n");
  const ConfigError from_file =
      expect_config_error([&] { fail_at("cfg.yaml", root["b"], "b", "bad"); });
  EXPECT_EQ(std::string(from_file.what()), "cfg.yaml:2: b: bad");
  EXPECT_EQ(from_file.key(), "b");
  const ConfigError from_set =
      expect_config_error([&] { fail_at("--set b=2", root["b"], "b", "bad"); });
  EXPECT_EQ(std::string(from_set.what()), "--set b=2: b: bad");
  const ConfigError no_key = expect_config_error([&] { fail_at("cfg.yaml", root, "", "bad"); });
  EXPECT_EQ(std::string(no_key.what()), "cfg.yaml:1: bad");
}

}  // namespace
}  // namespace muse::config

namespace muse::config {
namespace {

TEST(Load, ModelPresetFillsTheKeysNotSetAndRecordsIt) {
  const auto loaded = load<MuseConfig>(std::nullopt, {"model.preset=8b", "model.n_layers=2"});
  EXPECT_EQ(loaded.config.model.dim, 4096);
  EXPECT_EQ(loaded.config.model.n_kv_heads, 8);
  EXPECT_EQ(loaded.config.model.n_layers, 2);  // explicitly set: the preset does not win
  EXPECT_EQ(loaded.origins.at("model.dim"), "preset 8b");
  EXPECT_EQ(loaded.origins.at("model.n_layers"), "--set model.n_layers=2");
}

TEST(Load, ModelChecksRunAfterThePresetAndNameTheKey) {
  // n_kv_heads 8 is valid for 8b (32 heads) but not for tiny's 4 heads.
  EXPECT_NO_THROW(load<MuseConfig>(std::nullopt, {"model.preset=8b", "model.n_kv_heads=8"}));
  try {
    load<MuseConfig>(std::nullopt, {"model.n_kv_heads=3"});
    FAIL() << "n_heads 4 with n_kv_heads 3 was accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "model.n_kv_heads");
    EXPECT_THAT(e.what(), HasSubstr("--set model.n_kv_heads=3: model.n_kv_heads"));
  }
}

}  // namespace
}  // namespace muse::config
