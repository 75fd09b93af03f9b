// The corpus of bad configs in tests/config/bad/: each must be rejected with a
// ConfigError whose message starts "FILE[:LINE]: KEY: " and says what is wrong.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "apps/muse_config.h"
#include "config/loader.h"

namespace muse::config {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr const char* kCorpus = "tests/config/bad";
constexpr int kNoLine = 0;    // file-level and validate() errors carry no line
constexpr int kAnyLine = -1;  // a line number whose value yaml-cpp decides

struct BadCase {
  std::string file;    // under tests/config/bad/
  std::string key;     // ConfigError::key() and the key named in the message
  int line;            // 1-based line of the fault, kNoLine or kAnyLine
  std::string detail;  // the rest of the message after "FILE:LINE: KEY: "
  bool exact = true;   // detail is the whole rest, not just a part of it
};

std::ostream& operator<<(std::ostream& out, const BadCase& c) {
  return out << c.file;
}

const std::vector<BadCase>& bad_cases() {
  static const std::vector<BadCase> cases = {
      // Unknown keys, with and without a suggestion.
      {"unknown_top_level.yaml", "learning_rate", 3, "unknown key"},
      {"typo_nested_key.yaml", "trainer.stpes", 3, "unknown key (did you mean 'trainer.steps'?)"},
      {"typo_section.yaml", "trainr", 2, "unknown key (did you mean 'trainer'?)"},
      {"wrong_section.yaml", "trainer.every", 4, "unknown key (did you mean 'checkpoint.every'?)"},
      {"nested_key_at_top_level.yaml", "steps", 3, "unknown key (did you mean 'trainer.steps'?)"},
      {"top_level_key_in_section.yaml", "run.seed", 4, "unknown key (did you mean 'seed'?)"},
      // Wrong types.
      {"string_for_int.yaml", "trainer.steps", 3, "expected an integer, got 'many'"},
      {"quoted_int.yaml", "seed", 2, "expected an integer, got '42'"},
      {"list_for_int.yaml", "seed", 2, "expected an integer, got a list"},
      {"float_for_int.yaml", "checkpoint.keep", 4,
       "expected an integer, got '1.5' (not a whole number)"},
      {"mapping_for_int.yaml", "trainer.steps", 3, "expected an integer, got a mapping"},
      {"mapping_for_string.yaml", "run.name", 3, "expected a string, got a mapping"},
      {"string_for_bool.yaml", "dist.verify_collectives", 3, "expected true or false, got 'maybe'"},
      {"string_for_float.yaml", "dist.collective_timeout_s", 3, "expected a number, got 'soon'"},
      {"scalar_for_section.yaml", "dist", 2, "expected a mapping of keys, got 'mpi'"},
      {"list_for_section.yaml", "telemetry", 3, "expected a mapping of keys, got a list"},
      // Out of range.
      {"steps_zero.yaml", "trainer.steps", 3, "0 is out of range: must be >= 1"},
      {"negative_timeout.yaml", "dist.collective_timeout_s", 3,
       "-1.0 is out of range: must be > 0"},
      {"zero_timeout.yaml", "dist.collective_timeout_s", 3, "0.0 is out of range: must be > 0"},
      {"nan_timeout.yaml", "dist.collective_timeout_s", 3, ".nan is not a finite number"},
      {"negative_seed.yaml", "seed", 2, "-3 is out of range: must be >= 0"},
      {"log_every_zero.yaml", "telemetry.log_every", 3, "0 is out of range: must be >= 1"},
      // Not one of the choices.
      {"bad_stage.yaml", "stage", 2,
       "\"pretrainn\" is not allowed: must be one of pretrain|sft|rl|aggregate"},
      {"bad_backend.yaml", "dist.backend", 3,
       "\"gloo\" is not allowed: must be one of auto|mpi|nccl"},
      {"bad_progress.yaml", "telemetry.progress", 3,
       "\"fancy\" is not allowed: must be one of auto|lines|off"},
      // Not YAML, or not a mapping.
      {"unclosed_bracket.yaml", "", kAnyLine, "malformed YAML: ", false},
      {"bad_indentation.yaml", "", kAnyLine, "malformed YAML: ", false},
      {"top_level_list.yaml", "", kNoLine, "the top level must be a mapping of keys, got a list"},
      {"top_level_scalar.yaml", "", kNoLine,
       "the top level must be a mapping of keys, got 'pretrain'"},
      // Cross-field checks of MuseConfig::validate(), reported against the file.
      {"run_name_slash.yaml", "run.name", kNoLine, "\"exp/1\" is not a directory name"},
      {"run_name_dotdot.yaml", "run.name", kNoLine, "\"..\" is not a directory name"},
      {"run_dir_empty.yaml", "run.dir", kNoLine, "must not be empty"},
  };
  return cases;
}

class BadConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, IsRejectedNamingFileLineAndKey) {
  const BadCase& c = GetParam();
  const std::string path = std::string(kCorpus) + "/" + c.file;
  ASSERT_TRUE(fs::exists(path)) << path << " (tests run from the repository root)";
  try {
    load<MuseConfig>(path, {});
    FAIL() << path << " was accepted";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.key(), c.key) << what;
    EXPECT_THAT(what, HasSubstr(path));
    if (!c.key.empty()) {
      EXPECT_THAT(what, HasSubstr(c.key));
    }

    std::string prefix = path;
    if (c.line > 0) prefix += ":" + std::to_string(c.line);
    const std::string key_part = c.key.empty() ? "" : c.key + ": ";
    if (c.line == kAnyLine) {
      const std::regex with_line("^" + std::regex_replace(path, std::regex(R"([.])"), R"(\.)") +
                                 ":[1-9][0-9]*: " + key_part);
      EXPECT_TRUE(std::regex_search(what, with_line)) << "no line number in: " << what;
      EXPECT_THAT(what, HasSubstr(c.detail));
    } else if (c.exact) {
      EXPECT_EQ(what, prefix + ": " + key_part + c.detail);
    } else {
      EXPECT_THAT(what, ::testing::StartsWith(prefix + ": " + key_part));
      EXPECT_THAT(what, HasSubstr(c.detail));
    }
  } catch (const std::exception& e) {
    FAIL() << path << ": expected ConfigError, got: " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, BadConfig, ::testing::ValuesIn(bad_cases()),
                         [](const ::testing::TestParamInfo<BadCase>& param_info) {
                           return fs::path(param_info.param.file).stem().string();
                         });

// Every file in the corpus is in the table (and so is checked), and every file
// in the table exists.
TEST(BadConfigCorpus, TableCoversEveryFile) {
  std::set<std::string> on_disk;
  for (const auto& entry : fs::directory_iterator(kCorpus)) {
    if (entry.path().extension() == ".yaml") on_disk.insert(entry.path().filename().string());
  }
  std::set<std::string> in_table;
  for (const auto& c : bad_cases())
    in_table.insert(c.file);
  EXPECT_EQ(on_disk, in_table);
}

}  // namespace
}  // namespace muse::config
