// Tests of config/cli.h: the command-line parser of the muse-* executables.
#include "config/cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace muse::config {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A parser with one option of each kind, as muse-train declares them.
struct Cli {
  std::string config;
  std::vector<std::string> sets;
  bool help = false;
  bool version = false;
  ArgParser parser{"muse-train", "[options]", "Trains a model."};

  Cli() {
    parser.option("--config", "FILE", &config, "YAML config file");
    parser.repeated("--set", "KEY=VALUE", &sets, "override one key");
    parser.flag("--help", &help, "print this help and exit");
    parser.flag("--version", &version, "print the version and exit");
  }
};

std::string usage_error_of(Cli& cli, const std::vector<std::string>& args) {
  try {
    cli.parser.parse(args);
  } catch (const UsageError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected UsageError, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected UsageError, nothing thrown";
  return "";
}

TEST(ArgParser, NothingGivenChangesNothing) {
  Cli cli;
  cli.config = "default.yaml";
  cli.parser.parse(std::vector<std::string>{});
  EXPECT_EQ(cli.config, "default.yaml");
  EXPECT_TRUE(cli.sets.empty());
  EXPECT_FALSE(cli.help);
  EXPECT_FALSE(cli.version);
}

TEST(ArgParser, OptionWithSeparateValue) {
  Cli cli;
  cli.parser.parse({"--config", "a.yaml"});
  EXPECT_EQ(cli.config, "a.yaml");
}

TEST(ArgParser, OptionWithEqualsValue) {
  Cli cli;
  cli.parser.parse({"--config=b.yaml"});
  EXPECT_EQ(cli.config, "b.yaml");
  Cli empty;
  empty.config = "x";
  empty.parser.parse({"--config="});
  EXPECT_EQ(empty.config, "");
}

TEST(ArgParser, LastOptionWins) {
  Cli cli;
  cli.parser.parse({"--config", "a.yaml", "--config=b.yaml"});
  EXPECT_EQ(cli.config, "b.yaml");
}

TEST(ArgParser, RepeatedOptionKeepsOrder) {
  Cli cli;
  cli.parser.parse({"--set", "trainer.steps=5", "--set=seed=1", "--config", "c.yaml", "--set",
                    "trainer.steps=7"});
  EXPECT_EQ(cli.sets, (std::vector<std::string>{"trainer.steps=5", "seed=1", "trainer.steps=7"}));
  EXPECT_EQ(cli.config, "c.yaml");
}

TEST(ArgParser, ValueMayStartWithDashes) {
  // The word after an option that takes a value is its value, whatever it is.
  Cli cli;
  cli.parser.parse({"--config", "--odd-name.yaml"});
  EXPECT_EQ(cli.config, "--odd-name.yaml");
}

TEST(ArgParser, Flags) {
  Cli cli;
  cli.parser.parse({"--version"});
  EXPECT_TRUE(cli.version);
  EXPECT_FALSE(cli.help);
  Cli both;
  both.parser.parse({"--help", "--version", "--help"});
  EXPECT_TRUE(both.help);
  EXPECT_TRUE(both.version);
}

TEST(ArgParser, FlagTakesNoValue) {
  Cli cli;
  EXPECT_EQ(usage_error_of(cli, {"--help=yes"}), "option --help takes no value");
}

TEST(ArgParser, UnknownOptionWithSuggestion) {
  Cli cli;
  EXPECT_EQ(usage_error_of(cli, {"--confg", "a.yaml"}),
            "unknown option '--confg' (did you mean '--config'?) (see muse-train --help)");
  EXPECT_EQ(usage_error_of(cli, {"--sett=a=1"}),
            "unknown option '--sett' (did you mean '--set'?) (see muse-train --help)");
}

TEST(ArgParser, UnknownOptionWithoutSuggestion) {
  Cli cli;
  EXPECT_EQ(usage_error_of(cli, {"--learning-rate", "0.1"}),
            "unknown option '--learning-rate' (see muse-train --help)");
}

TEST(ArgParser, MissingValue) {
  Cli cli;
  EXPECT_EQ(usage_error_of(cli, {"--config"}), "option --config needs a value: --config FILE");
  Cli sets;
  EXPECT_EQ(usage_error_of(sets, {"--set", "a=1", "--set"}),
            "option --set needs a value: --set KEY=VALUE");
}

TEST(ArgParser, StrayPositional) {
  Cli cli;
  EXPECT_EQ(usage_error_of(cli, {"train.yaml"}),
            "unexpected argument 'train.yaml' (see muse-train --help)");
  Cli after;
  EXPECT_EQ(usage_error_of(after, {"--config", "a.yaml", "extra"}),
            "unexpected argument 'extra' (see muse-train --help)");
  Cli single_dash;
  EXPECT_EQ(usage_error_of(single_dash, {"-h"}),
            "unexpected argument '-h' (see muse-train --help)");
}

TEST(ArgParser, ArgcArgvSkipsProgramName) {
  Cli cli;
  const char* argv[] = {"/path/to/muse-train", "--config", "d.yaml", "--set", "seed=2"};
  cli.parser.parse(5, argv);
  EXPECT_EQ(cli.config, "d.yaml");
  EXPECT_EQ(cli.sets, (std::vector<std::string>{"seed=2"}));
}

TEST(ArgParser, UsageListsEveryOption) {
  Cli cli;
  const std::string usage = cli.parser.usage();
  EXPECT_THAT(usage, StartsWith("usage: muse-train [options]\n\nTrains a model.\n\noptions:\n"));
  EXPECT_THAT(usage, HasSubstr("  --config FILE"));
  EXPECT_THAT(usage, HasSubstr("  --set KEY=VALUE"));
  EXPECT_THAT(usage, HasSubstr("  --help"));
  EXPECT_THAT(usage, HasSubstr("YAML config file\n"));
  EXPECT_THAT(usage, HasSubstr("print the version and exit\n"));
  // Help texts start in one column.
  const size_t a =
      usage.find("YAML config file") - usage.rfind('\n', usage.find("YAML config file"));
  const size_t b = usage.find("print this help") - usage.rfind('\n', usage.find("print this help"));
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace muse::config
