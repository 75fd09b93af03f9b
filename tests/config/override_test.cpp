// Tests of `--set key.path=value` overrides: parse_override and load().
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "apps/muse_config.h"
#include "config/loader.h"

namespace muse::config {
namespace {

using ::testing::HasSubstr;

// load<MuseConfig>() with `overrides` must throw a ConfigError with exactly
// this key and message.
void expect_rejected(const std::vector<std::string>& overrides, const std::string& key,
                     const std::string& message) {
  SCOPED_TRACE("--set " + overrides.back());
  try {
    load<MuseConfig>(std::nullopt, overrides);
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), key);
    EXPECT_EQ(std::string(e.what()), message);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ConfigError, got: " << e.what();
  }
}

TEST(ParseOverride, BuildsNestedMapping) {
  const YAML::Node n = parse_override("trainer.steps=42");
  ASSERT_TRUE(n.IsMap());
  ASSERT_TRUE(n["trainer"].IsMap());
  EXPECT_EQ(n["trainer"]["steps"].as<int>(), 42);
  EXPECT_EQ(n.size(), 1u);

  const YAML::Node top = parse_override("seed=3");
  EXPECT_EQ(top["seed"].as<int>(), 3);

  const YAML::Node deep = parse_override("a.b.c=[1, 2]");
  ASSERT_TRUE(deep["a"]["b"]["c"].IsSequence());
  EXPECT_EQ(deep["a"]["b"]["c"].size(), 2u);
}

TEST(ParseOverride, ValueIsEverythingAfterTheFirstEquals) {
  const YAML::Node n = parse_override("run.name=a=b");
  EXPECT_EQ(n["run"]["name"].as<std::string>(), "a=b");
  const YAML::Node hf = parse_override("init_from=hf:models/x");
  EXPECT_EQ(hf["init_from"].as<std::string>(), "hf:models/x");
}

TEST(Override, MissingEqualsSign) {
  expect_rejected({"trainer.steps"}, "", "--set trainer.steps: expected key.path=value");
  expect_rejected({"trainer.steps 5"}, "", "--set trainer.steps 5: expected key.path=value");
}

TEST(Override, EmptyKey) {
  expect_rejected({"=5"}, "", "--set =5: expected key.path=value");
}

TEST(Override, EmptyKeyComponents) {
  expect_rejected({"a..b=1"}, "a..b", "--set a..b=1: 'a..b' is not a key path");
  expect_rejected({".seed=1"}, ".seed", "--set .seed=1: '.seed' is not a key path");
  expect_rejected({"trainer.=1"}, "trainer.", "--set trainer.=1: 'trainer.' is not a key path");
  expect_rejected({"trainer..steps=1"}, "trainer..steps",
                  "--set trainer..steps=1: 'trainer..steps' is not a key path");
}

TEST(Override, UnknownKeyWithSuggestion) {
  expect_rejected({"trainer.stpes=5"}, "trainer.stpes",
                  "--set trainer.stpes=5: trainer.stpes: unknown key (did you mean "
                  "'trainer.steps'?)");
  expect_rejected({"trainer.every=5"}, "trainer.every",
                  "--set trainer.every=5: trainer.every: unknown key (did you mean "
                  "'checkpoint.every'?)");
  expect_rejected({"sede=5"}, "sede", "--set sede=5: sede: unknown key (did you mean 'seed'?)");
}

TEST(Override, UnknownKeyWithoutSuggestion) {
  expect_rejected({"xyzzy.plugh=0.1"}, "xyzzy", "--set xyzzy.plugh=0.1: xyzzy: unknown key");
}

TEST(Override, WrongType) {
  expect_rejected({"trainer.steps=many"}, "trainer.steps",
                  "--set trainer.steps=many: trainer.steps: expected an integer, got 'many'");
  expect_rejected({"trainer.steps=1.5"}, "trainer.steps",
                  "--set trainer.steps=1.5: trainer.steps: expected an integer, got '1.5' (not a "
                  "whole number)");
  expect_rejected({"trainer.steps=[1]"}, "trainer.steps",
                  "--set trainer.steps=[1]: trainer.steps: expected an integer, got a list");
  expect_rejected({"trainer.steps="}, "trainer.steps",
                  "--set trainer.steps=: trainer.steps: expected an integer, got nothing (null)");
  expect_rejected({"dist.verify_collectives=maybe"}, "dist.verify_collectives",
                  "--set dist.verify_collectives=maybe: dist.verify_collectives: expected true or "
                  "false, got 'maybe'");
  expect_rejected({"trainer=5"}, "trainer",
                  "--set trainer=5: trainer: expected a mapping of keys, got '5'");
  expect_rejected({"trainer.steps.x=5"}, "trainer.steps",
                  "--set trainer.steps.x=5: trainer.steps: expected an integer, got a mapping");
  expect_rejected({"run.name=a: b"}, "run.name",
                  "--set run.name=a: b: run.name: expected a string, got a mapping");
}

TEST(Override, OutOfRangeAndChoices) {
  expect_rejected({"trainer.steps=0"}, "trainer.steps",
                  "--set trainer.steps=0: trainer.steps: 0 is out of range: must be >= 1");
  expect_rejected({"dist.collective_timeout_s=-1"}, "dist.collective_timeout_s",
                  "--set dist.collective_timeout_s=-1: dist.collective_timeout_s: -1.0 is out of "
                  "range: must be > 0");
  expect_rejected({"seed=-1"}, "seed", "--set seed=-1: seed: -1 is out of range: must be >= 0");
  expect_rejected({"stage=pretrainn"}, "stage",
                  "--set stage=pretrainn: stage: \"pretrainn\" is not allowed: must be one of "
                  "pretrain|sft|rl|aggregate");
}

TEST(Override, MalformedValueNamesTheKey) {
  try {
    load<MuseConfig>(std::nullopt, {"trainer.steps=[1"});
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "trainer.steps");
    EXPECT_THAT(e.what(), ::testing::StartsWith("--set trainer.steps=[1: trainer.steps: malformed "
                                                "value: "));
  }
}

TEST(Override, EachOverrideIsCheckedOnItsOwn) {
  // A bad value is an error even when a later --set would replace it.
  expect_rejected({"trainer.steps=0", "trainer.steps=5"}, "trainer.steps",
                  "--set trainer.steps=0: trainer.steps: 0 is out of range: must be >= 1");
}

TEST(Override, EmptyRunNameFailsValidate) {
  // `run.name=` is a valid string override (the empty string)...
  EXPECT_EQ(parse_override("run.name=")["run"]["name"].IsNull(), true);
  // ...which the root's validate() then rejects, naming run.name and the --set.
  expect_rejected({"run.name="}, "run.name",
                  "--set run.name=: run.name: \"\" is not a directory name");
  expect_rejected({"run.name=ok", "run.name=a/b"}, "run.name",
                  "--set run.name=a/b: run.name: \"a/b\" is not a directory name");
  expect_rejected({"run.dir="}, "run.dir", "--set run.dir=: run.dir: must not be empty");
}

TEST(Override, LaterOverrideFixesValidate) {
  // validate() runs once, after every override.
  const auto loaded = load<MuseConfig>(std::nullopt, {"run.name=", "run.name=fixed"});
  EXPECT_EQ(loaded.config.run.name, "fixed");
  EXPECT_EQ(loaded.origins.at("run.name"), "--set run.name=fixed");
}

}  // namespace
}  // namespace muse::config
