// Tests of config/render.h: --help text, the Markdown reference and the table
// of resolved values.
#include "config/render.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "apps/muse_config.h"

namespace muse::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// --- render_help -----------------------------------------------------------------------

TEST(RenderHelp, EveryKeyWithTypeUnitConstraintsAndDefault) {
  const auto fields = describe_fields<MuseConfig>();
  const std::string help = render_help(fields);
  for (const auto& f : fields) {
    EXPECT_THAT("\n" + help, HasSubstr("\n  " + f.path + " (")) << f.path;
  }
  EXPECT_THAT(help, StartsWith("  stage (string, one of pretrain|sft|rl|aggregate) = \"pretrain\"\n"
                               "      what to run: pretrain, sft, rl or aggregate\n"));
  EXPECT_THAT(help, HasSubstr("\n  trainer.steps (int, steps, >= 1) = 100\n"
                              "      optimizer steps to train for\n"));
  EXPECT_THAT(help, HasSubstr("\n  dist.collective_timeout_s (float, s, > 0) = 300.0\n"));
  EXPECT_THAT(help, HasSubstr("\n  dist.verify_collectives (bool) = true\n"));
  EXPECT_THAT(help, HasSubstr("\n  checkpoint.keep (int, >= 1) = 2\n"));
}

TEST(RenderHelp, WrapsHelpTextWithoutLosingWords) {
  const auto fields = describe_fields<MuseConfig>();
  const std::string help = render_help(fields);
  for (const auto& line : lines_of(help)) {
    if (line.rfind("      ", 0) == 0) {
      EXPECT_LE(line.size(), 6u + 72u) << line;
    }
  }
  // Re-joining the wrapped lines of each key gives its help text back.
  const auto lines = lines_of(help);
  size_t i = 0;
  for (const auto& f : fields) {
    ASSERT_LT(i, lines.size());
    EXPECT_THAT(lines[i], StartsWith("  " + f.path + " ("));
    std::string joined;
    for (++i; i < lines.size() && lines[i].rfind("      ", 0) == 0; ++i) {
      if (!joined.empty()) joined += ' ';
      joined += lines[i].substr(6);
    }
    EXPECT_EQ(joined, std::string(f.help)) << f.path;
  }
  EXPECT_EQ(i, lines.size());
}

// --- render_markdown -------------------------------------------------------------------

TEST(RenderMarkdown, TitleIntroAndASectionPerSection) {
  const auto sections = describe_sections<MuseConfig>();
  const auto fields = describe_fields<MuseConfig>();
  const std::string md = render_markdown(sections, fields, "Config reference", "Intro text.");
  EXPECT_THAT(md, StartsWith("# Config reference\n\nIntro text.\n"));
  EXPECT_EQ(count_of(md, "\n## Top level\n"), 1u);
  ASSERT_FALSE(sections.empty());
  for (const auto& s : sections) {
    EXPECT_EQ(count_of(md, "\n## `" + s.path + "`\n\n" + s.help + "\n"), 1u) << s.path;
  }
  for (const std::string name : {"run", "trainer", "checkpoint", "dist", "telemetry"}) {
    EXPECT_THAT(md, HasSubstr("\n## `" + name + "`\n")) << name;
  }
  // One header per table: top level plus one per section.
  EXPECT_EQ(count_of(md, "| key | type | default | unit | allowed | description |\n"),
            sections.size() + 1);
}

TEST(RenderMarkdown, EveryKeyOnceUnderItsSection) {
  const auto sections = describe_sections<MuseConfig>();
  const auto fields = describe_fields<MuseConfig>();
  const std::string md = render_markdown(sections, fields, "T", "I");
  for (const auto& f : fields) {
    const std::string cell = "| `" + f.path + "` |";
    ASSERT_EQ(count_of(md, cell), 1u) << f.path;
    // The nearest heading above the row is the key's section.
    const size_t row = md.find(cell);
    const size_t heading = md.rfind("\n## ", row);
    const size_t dot = f.path.rfind('.');
    const std::string expected_heading =
        dot == std::string::npos ? "\n## Top level\n" : "\n## `" + f.path.substr(0, dot) + "`\n";
    EXPECT_EQ(md.compare(heading, expected_heading.size(), expected_heading), 0) << f.path;
  }
}

TEST(RenderMarkdown, RowContentAndPipeEscaping) {
  const std::string md =
      render_markdown(describe_sections<MuseConfig>(), describe_fields<MuseConfig>(), "T", "I");
  EXPECT_THAT(md, HasSubstr("| `stage` | string | `\"pretrain\"` |  | one of "
                            "pretrain\\|sft\\|rl\\|aggregate | what to run: pretrain, sft, rl or "
                            "aggregate |\n"));
  EXPECT_THAT(md, HasSubstr("| `trainer.steps` | int | `100` | steps | >= 1 | optimizer steps to "
                            "train for |\n"));
  // Every table row has the same number of unescaped cell separators.
  for (const auto& line : lines_of(md)) {
    if (line.rfind("| ", 0) != 0) continue;
    size_t pipes = 0;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '|' && (i == 0 || line[i - 1] != '\\')) ++pipes;
    }
    EXPECT_EQ(pipes, 7u) << line;
  }
}

// --- render_table ----------------------------------------------------------------------

TEST(RenderTable, EveryKeyValueAndOrigin) {
  MuseConfig c;
  c.trainer.steps = 7;
  c.stage = "sft";
  const Origins origins = {{"trainer.steps", "--set trainer.steps=7"}, {"stage", "my.yaml"}};
  const auto fields = describe_fields(c);
  const std::string table = render_table(fields, origins);
  const auto lines = lines_of(table);
  // Rule, header, rule, one row per key, rule.
  ASSERT_EQ(lines.size(), fields.size() + 4);
  for (const auto& f : fields) {
    EXPECT_THAT(table, HasSubstr("| " + f.path + " ")) << f.path;
  }
  // All lines are the same width: the box is closed.
  for (const auto& line : lines)
    EXPECT_EQ(line.size(), lines[0].size()) << line;
  EXPECT_THAT(lines[0], StartsWith("+-"));
  EXPECT_THAT(lines[1], StartsWith("| key "));
  EXPECT_THAT(lines[1], HasSubstr("| value "));
  EXPECT_THAT(lines[1], HasSubstr("| from "));

  auto row_of = [&](const std::string& path) {
    for (const auto& line : lines) {
      if (line.rfind("| " + path + " ", 0) == 0) return line;
    }
    return std::string();
  };
  auto squeeze = [](std::string s) {  // collapse runs of spaces
    std::string out;
    for (char ch : s) {
      if (!(ch == ' ' && !out.empty() && out.back() == ' ')) out += ch;
    }
    return out;
  };
  EXPECT_EQ(squeeze(row_of("trainer.steps")), "| trainer.steps | 7 | --set trainer.steps=7 |");
  EXPECT_EQ(squeeze(row_of("stage")), "| stage | \"sft\" | my.yaml |");
  EXPECT_EQ(squeeze(row_of("seed")), "| seed | 1234 | default |");
  EXPECT_EQ(squeeze(row_of("dist.collective_timeout_s")),
            "| dist.collective_timeout_s | 300.0 | default |");
}

TEST(RenderTable, DisplayWidthCountsCodePoints) {
  EXPECT_EQ(display_width(""), 0u);
  EXPECT_EQ(display_width("abc"), 3u);
  EXPECT_EQ(display_width("…"), 1u);
  EXPECT_EQ(display_width("réponse — ok"), 12u);
}

// Long values are cut at their end, long origins at their start, so that no
// line is wider than asked; the note follows the table once.
TEST(RenderTable, CutsLongValuesToTheWidth) {
  MuseConfig c;
  std::string long_template;
  for (int i = 0; i < 50; ++i)
    long_template += "réponse {problem} ";
  c.aggregate.prompt_template = long_template;
  const std::string long_origin = "/very/long/directory/" + std::string(80, 'd') + "/config.json";
  const Origins origins = {{"aggregate.template", "my.yaml"}, {"model.dim", long_origin}};
  const std::string note = "values cut with … are whole in runs/x/config.yaml";
  const std::string table = render_table(describe_fields(c), origins, 120, note);
  const auto lines = lines_of(table);
  ASSERT_EQ(lines.back(), note);
  EXPECT_EQ(count_of(table, note), 1u);
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(display_width(lines[i]), display_width(lines[0])) << lines[i];
    EXPECT_LE(display_width(lines[i]), 120u) << lines[i];
  }
  // The value keeps its start, the origin its end (the file's name).
  const std::string value_start = format_value(long_template).substr(0, 20);
  EXPECT_THAT(table, HasSubstr("| aggregate.template "));
  EXPECT_THAT(table, HasSubstr(value_start));
  EXPECT_THAT(table, HasSubstr("… | my.yaml"));
  EXPECT_THAT(table, HasSubstr("| …ddd"));
  EXPECT_THAT(table, HasSubstr("d/config.json |"));
  // A table that fits is left whole, without the note.
  const auto all = describe_fields(c);
  const std::vector<FieldInfo> few(all.begin(), all.begin() + 5);
  const std::string whole = render_table(few, {}, 120, note);
  EXPECT_THAT(whole, Not(HasSubstr("…")));
  EXPECT_THAT(whole, Not(HasSubstr(note)));
  EXPECT_EQ(whole, render_table(few, {}));
}

}  // namespace
}  // namespace muse::config
