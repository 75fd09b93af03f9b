// The rewards.* config section: defaults, overrides through the loader, and
// the errors of validate().
#include "rewards/rewards_config.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "config/loader.h"
#include "rewards/registry.h"

namespace muse::rewards {
namespace {

struct Root {
  RewardsConfig rewards;
  template <class V>
  void visit(V& v) {
    v.section("rewards", rewards, "rewards");
  }
  void validate() const { rewards.validate(); }
};

RewardsConfig load_with(const std::vector<std::string>& overrides) {
  return config::load<Root>(std::nullopt, overrides).config.rewards;
}

// The key validate() names for `cfg`, or "" when it passes.
std::string error_key(const RewardsConfig& cfg) {
  try {
    cfg.validate();
  } catch (const config::ConfigError& e) {
    return e.key();
  }
  return "";
}

TEST(RewardsConfig, Defaults) {
  const RewardsConfig c = load_with({});
  EXPECT_DOUBLE_EQ(c.correctness.weight, 1.0);
  EXPECT_EQ(c.correctness.mode(), MatchMode::kNumeric);
  EXPECT_DOUBLE_EQ(c.format.weight, 0.0);
  EXPECT_EQ(c.length.kind, "none");
  EXPECT_EQ(c.length.combine, "add");
  EXPECT_EQ(c.length.measure, "think");
  EXPECT_DOUBLE_EQ(c.length.alpha, 0.0003);
  EXPECT_DOUBLE_EQ(c.length.delta, 0.5);
  EXPECT_EQ(c.length.budget_min, 100);
  EXPECT_EQ(c.length.budget_max, 4000);
  EXPECT_DOUBLE_EQ(c.length.cosine_correct_short, 2.0);
  EXPECT_DOUBLE_EQ(c.length.cosine_wrong_short, -10.0);
  EXPECT_DOUBLE_EQ(c.repetition.max_penalty, -1.0);
  EXPECT_EQ(c.repetition.ngram, 3);
  EXPECT_EQ(config::describe_fields<Root>().size(), 28u);
  EXPECT_EQ(error_key(c), "");
}

TEST(RewardsConfig, Overrides) {
  const RewardsConfig c =
      load_with({"rewards.length.kind=l1_max", "rewards.length.combine=gate",
                 "rewards.length.budget_max=2000", "rewards.correctness.match=exact",
                 "rewards.length.warmup=step", "rewards.repetition.weight=0.5"});
  EXPECT_EQ(c.length.kind, "l1_max");
  EXPECT_EQ(c.length.combine, "gate");
  EXPECT_EQ(c.length.budget_max, 2000);
  EXPECT_EQ(c.correctness.mode(), MatchMode::kExact);
  EXPECT_EQ(c.length.warmup, "step");
  EXPECT_DOUBLE_EQ(c.repetition.weight, 0.5);
}

TEST(RewardsConfig, HelpNamesEveryLengthKind) {
  for (const config::FieldInfo& f : config::describe_fields<Root>()) {
    if (f.path != "rewards.length.kind") continue;
    for (const std::string& name : length_kinds())
      EXPECT_NE(f.help.find(name), std::string::npos) << name;
    return;
  }
  FAIL() << "no rewards.length.kind";
}

TEST(RewardsConfig, UnknownKindNamesTheKeyAndTheKnownNames) {
  RewardsConfig c;
  c.length.kind = "shortest";
  try {
    c.validate();
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "rewards.length.kind");
    for (const std::string& name : length_kinds())
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
  // Through the loader the error names the --set that caused it.
  try {
    load_with({"rewards.length.kind=shortest"});
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "rewards.length.kind");
    EXPECT_NE(std::string(e.what()).find("--set rewards.length.kind=shortest"), std::string::npos)
        << e.what();
  }
}

TEST(RewardsConfig, BudgetErrors) {
  RewardsConfig negative;
  negative.length.budget_min = -5;
  EXPECT_EQ(error_key(negative), "rewards.length.budget_min");
  RewardsConfig zero_max;
  zero_max.length.budget_max = 0;
  EXPECT_EQ(error_key(zero_max), "rewards.length.budget_max");
  RewardsConfig reversed;
  reversed.length.kind = "l1_exact";
  reversed.length.budget_min = 500;
  reversed.length.budget_max = 100;
  EXPECT_EQ(error_key(reversed), "rewards.length.budget_min");
  RewardsConfig eval;
  eval.length.eval_budget = -1;
  EXPECT_EQ(error_key(eval), "rewards.length.eval_budget");
  EXPECT_THROW(load_with({"rewards.length.budget_min=-5"}), config::ConfigError);
}

TEST(RewardsConfig, OtherErrorsNameTheirKey) {
  auto key_after = [](auto change) {
    RewardsConfig c;
    change(c);
    return error_key(c);
  };
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.correctness.match = "fuzzy"; }),
            "rewards.correctness.match");
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.length.weight = -1; }), "rewards.length.weight");
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.length.combine = "mul"; }),
            "rewards.length.combine");
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.length.measure = "chars"; }),
            "rewards.length.measure");
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.length.warmup = "cosine"; }),
            "rewards.length.warmup");
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.length.warmup_steps = -1; }),
            "rewards.length.warmup_steps");
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.length.arora_alpha = 1.0; }),
            "rewards.length.arora_alpha");
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.length.per_token = -0.1; }),
            "rewards.length.per_token");
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.repetition.ngram = 0; }),
            "rewards.repetition.ngram");
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.repetition.max_penalty = 0.5; }),
            "rewards.repetition.max_penalty");
  EXPECT_EQ(key_after([](RewardsConfig& c) {
              c.length.overlong_max_len = 40;
              c.length.overlong_cache = 40;
            }),
            "rewards.length.overlong_cache");
  EXPECT_EQ(key_after([](RewardsConfig& c) { c.length.overlong_cache = 4096; }), "");
}

TEST(RewardsConfig, AnswerFormsAreReadInOrderAndNeverNone) {
  const RewardsConfig c = load_with({"rewards.correctness.extract=[boxed, last_number]"});
  EXPECT_EQ(c.correctness.rule().forms,
            (std::vector<AnswerForm>{AnswerForm::kBoxed, AnswerForm::kLastNumber}));
  EXPECT_EQ(RewardsConfig{}.correctness.rule().forms, std::vector<AnswerForm>{AnswerForm::kTags});
  RewardsConfig none;
  none.correctness.extract.clear();
  EXPECT_EQ(error_key(none), "rewards.correctness.extract");
  EXPECT_THROW(load_with({"rewards.correctness.extract=[tags, first_number]"}),
               config::ConfigError);
}

}  // namespace
}  // namespace muse::rewards
