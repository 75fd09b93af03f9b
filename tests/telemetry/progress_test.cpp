// Tests of telemetry/progress.h: number formatting, memory readings and the
// progress line.
#include "telemetry/progress.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace muse::telemetry {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Clock = ProgressLine::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kMiB = 1024.0 * 1024;
constexpr double kGiB = 1024.0 * 1024 * 1024;

// --- format_duration ----------------------------------------------------------------------

TEST(FormatDuration, Seconds) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(0.4), "0s");
  EXPECT_EQ(format_duration(45), "45s");
  EXPECT_EQ(format_duration(59.4), "59s");
}

TEST(FormatDuration, Minutes) {
  EXPECT_EQ(format_duration(59.6), "1m00s");  // rounds up into the next unit
  EXPECT_EQ(format_duration(60), "1m00s");
  EXPECT_EQ(format_duration(361), "6m01s");
  EXPECT_EQ(format_duration(3599.4), "59m59s");
}

TEST(FormatDuration, HoursAndDays) {
  EXPECT_EQ(format_duration(3599.6), "1h00m");
  EXPECT_EQ(format_duration(3600), "1h00m");
  EXPECT_EQ(format_duration(7500), "2h05m");
  EXPECT_EQ(format_duration(86399), "23h59m");
  EXPECT_EQ(format_duration(86400), "1d00h");
  EXPECT_EQ(format_duration(3 * 86400 + 4 * 3600 + 59 * 60), "3d04h");
  EXPECT_EQ(format_duration(400 * 86400.0), "400d00h");
}

TEST(FormatDuration, UnknownIsQuestionMark) {
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_duration(-0.1), "?");
  EXPECT_EQ(format_duration(kNaN), "?");
  EXPECT_EQ(format_duration(kInf), "?");
  EXPECT_EQ(format_duration(-kInf), "?");
}

// --- format_count ---------------------------------------------------------------------------

TEST(FormatCount, Units) {
  EXPECT_EQ(format_count(0), "0");
  EXPECT_EQ(format_count(950), "950");
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_count(1000), "1k");
  EXPECT_EQ(format_count(12400), "12.4k");
  EXPECT_EQ(format_count(12345), "12.3k");
  EXPECT_EQ(format_count(100000), "100k");
  EXPECT_EQ(format_count(3.14e6), "3.14M");
  EXPECT_EQ(format_count(1.23e9), "1.23G");
  EXPECT_EQ(format_count(kNaN), "?");
}

// The unit is chosen after rounding: 999999 is "1M", never "1e+03k".
TEST(FormatCount, JustBelowAUnitBoundary) {
  EXPECT_EQ(format_count(999999), "1M");
  EXPECT_EQ(format_count(999.6e6), "1G");
  for (double v : {999.5e3, 999999.0, 999.6e6, 999.9e9}) {
    EXPECT_THAT(format_count(v), Not(HasSubstr("e+"))) << v;
  }
}

// --- format_bytes ---------------------------------------------------------------------------

TEST(FormatBytes, MiBAndGiB) {
  EXPECT_EQ(format_bytes(0), "0 MiB");
  EXPECT_EQ(format_bytes(512 * kMiB), "512 MiB");
  EXPECT_EQ(format_bytes(100 * kMiB), "100 MiB");
  EXPECT_EQ(format_bytes(kGiB), "1.0 GiB");
  EXPECT_EQ(format_bytes(1.3 * kGiB), "1.3 GiB");
  EXPECT_EQ(format_bytes(10 * kGiB), "10.0 GiB");
}

// --- memory ---------------------------------------------------------------------------------

TEST(Rss, CurrentAndPeakArePositive) {
  const int64_t current = current_rss_bytes();
  const int64_t peak = peak_rss_bytes();
  EXPECT_GT(current, 0);
  EXPECT_GT(peak, 0);
  EXPECT_GE(peak, current);
  EXPECT_EQ(current % 1024, 0);  // /proc reports kiB
}

TEST(Rss, GrowsWithTouchedMemory) {
  const int64_t before = peak_rss_bytes();
  std::vector<char> block(64 << 20);
  for (size_t i = 0; i < block.size(); i += 4096)
    block[i] = static_cast<char>(i);
  EXPECT_GE(current_rss_bytes(), 64 << 20);
  EXPECT_GE(peak_rss_bytes(), before);
  EXPECT_GE(peak_rss_bytes(), current_rss_bytes());
  EXPECT_EQ(block[4096], static_cast<char>(4096));
}

// --- progress_mode --------------------------------------------------------------------------

TEST(ProgressModeSetting, Values) {
  EXPECT_EQ(progress_mode("auto", true), ProgressMode::kInPlace);
  EXPECT_EQ(progress_mode("auto", false), ProgressMode::kLines);
  EXPECT_EQ(progress_mode("lines", true), ProgressMode::kLines);
  EXPECT_EQ(progress_mode("lines", false), ProgressMode::kLines);
  EXPECT_EQ(progress_mode("off", true), ProgressMode::kOff);
  EXPECT_EQ(progress_mode("off", false), ProgressMode::kOff);
}

TEST(ProgressModeSetting, InvalidThrows) {
  for (const std::string bad : {"", "Auto", "inplace", "on", "line"}) {
    try {
      progress_mode(bad, true);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr("'" + bad + "'"));
    }
  }
}

// --- ProgressLine -----------------------------------------------------------------------------

TEST(ProgressLine, TextRatesAndEta) {
  std::ostringstream out;
  const auto t0 = Clock::now();
  ProgressLine line("train", 100, ProgressMode::kLines, out, 0, t0);
  for (int s = 1; s <= 10; ++s) {
    line.update(s, 1000, {{"loss", "2.5000"}, {"lr", "0.001"}}, t0 + seconds(s));
  }
  EXPECT_NEAR(line.tokens_per_second(), 1000.0, 1.0);
  EXPECT_NEAR(line.seconds_per_step(), 1.0, 1e-3);
  EXPECT_NEAR(line.eta_seconds(), 90.0, 0.1);
  EXPECT_THAT(line.text(),
              StartsWith("train  step 10/100 | loss 2.5000 | lr 0.001 | 1k tok/s | 1 s/step | "
                         "ETA 1m30s | mem "));
  EXPECT_THAT(line.text(), HasSubstr("step 10/100"));
  EXPECT_THAT(line.text(), HasSubstr("tok/s"));
  EXPECT_THAT(line.text(), HasSubstr("ETA"));
  EXPECT_TRUE(line.text().ends_with(" MiB") || line.text().ends_with(" GiB")) << line.text();
}

TEST(ProgressLine, RatesFollowTheRecentWindow) {
  std::ostringstream out;
  ProgressLine line("pretrain", 1000, ProgressMode::kOff, out);
  const auto t0 = Clock::now();
  auto t = t0;
  int64_t step = 0;
  // A slow start (2 s/step, 100 tokens/step)...
  for (int i = 0; i < 100; ++i)
    line.update(++step, 100, {}, t += seconds(2));
  EXPECT_NEAR(line.seconds_per_step(), 2.0, 1e-9);
  EXPECT_NEAR(line.tokens_per_second(), 50.0, 1e-9);
  // ...then steady at 0.5 s/step and 4000 tokens/step: the rates are those of
  // the recent steps, not an average since the start.
  for (int i = 0; i < 100; ++i)
    line.update(++step, 4000, {}, t += milliseconds(500));
  EXPECT_DOUBLE_EQ(line.seconds_per_step(), 0.5);
  EXPECT_DOUBLE_EQ(line.tokens_per_second(), 8000.0);
  EXPECT_DOUBLE_EQ(line.eta_seconds(), (1000 - 200) * 0.5);
  EXPECT_THAT(line.text(), StartsWith("pretrain  step 200/1000 | 8k tok/s | 0.5 s/step | ETA "
                                      "6m40s | mem "));
}

TEST(ProgressLine, SeveralStepsPerUpdate) {
  std::ostringstream out;
  ProgressLine line("sft", 100, ProgressMode::kOff, out);
  const auto t0 = Clock::now();
  // One update every 10 steps, 5 s apart: 0.5 s/step.
  for (int i = 1; i <= 5; ++i)
    line.update(10 * i, 20000, {}, t0 + seconds(5 * i));
  EXPECT_NEAR(line.seconds_per_step(), 0.5, 1e-3);
  EXPECT_NEAR(line.tokens_per_second(), 4000.0, 1.0);
  EXPECT_NEAR(line.eta_seconds(), 25.0, 0.1);
  EXPECT_THAT(line.text(), StartsWith("sft  step 50/100 | 4k tok/s | 0.5 s/step | ETA 25s | "));
}

TEST(ProgressLine, ResumedRunCountsFromFirstStep) {
  std::ostringstream out;
  ProgressLine line("pretrain", 100, ProgressMode::kOff, out, /*first_step=*/50);
  const auto t0 = Clock::now();
  line.update(60, 0, {{"loss", "1.0"}}, t0 + seconds(10));
  EXPECT_NEAR(line.seconds_per_step(), 1.0, 1e-3);  // 10 steps in 10 s, not 60
  EXPECT_NEAR(line.eta_seconds(), 40.0, 0.1);
  // No tokens counted: no tok/s field.
  EXPECT_THAT(line.text(),
              StartsWith("pretrain  step 60/100 | loss 1.0 | 1 s/step | ETA 40s | mem "));
  EXPECT_THAT(line.text(), Not(HasSubstr("tok/s")));
}

TEST(ProgressLine, LinesModeWritesOneLinePerUpdate) {
  std::ostringstream out;
  ProgressLine line("rl", 10, ProgressMode::kLines, out);
  const auto t0 = Clock::now();
  std::string expected;
  for (int s = 1; s <= 3; ++s) {
    line.update(s, 10, {{"reward", "0.5"}}, t0 + seconds(s));
    expected += line.text() + "\n";
    EXPECT_EQ(out.str(), expected);
  }
  EXPECT_THAT(out.str(), Not(HasSubstr("\r")));
  EXPECT_THAT(out.str(), Not(HasSubstr("\x1b")));
  line.finish();
  EXPECT_EQ(out.str(), expected);  // nothing left to end
}

TEST(ProgressLine, OffModeWritesNothing) {
  std::ostringstream out;
  ProgressLine line("rl", 10, ProgressMode::kOff, out);
  const auto t0 = Clock::now();
  line.update(1, 10, {}, t0 + seconds(1));
  line.update(2, 10, {}, t0 + seconds(2));
  line.finish();
  EXPECT_EQ(out.str(), "");
  EXPECT_THAT(line.text(), StartsWith("rl  step 2/10 | "));  // still computed
}

TEST(ProgressLine, InPlaceModeRewritesTheLineAndFinishEndsIt) {
  std::ostringstream out;
  ProgressLine line("pretrain", 10, ProgressMode::kInPlace, out);
  const auto t0 = Clock::now();
  line.update(1, 10, {}, t0 + seconds(1));
  const std::string first = line.text();
  EXPECT_EQ(out.str(), "\r" + first + "\x1b[K");
  line.update(2, 10, {}, t0 + seconds(2));
  const std::string second = line.text();
  EXPECT_EQ(out.str(), "\r" + first + "\x1b[K" + "\r" + second + "\x1b[K");
  EXPECT_THAT(out.str(), Not(HasSubstr("\n")));
  line.finish();
  EXPECT_EQ(out.str(), "\r" + first + "\x1b[K" + "\r" + second + "\x1b[K\n");
  line.finish();  // only once
  EXPECT_THAT(out.str(), EndsWith("\x1b[K\n"));
  EXPECT_EQ(out.str().size(), ("\r" + first + "\x1b[K" + "\r" + second + "\x1b[K\n").size());
}

TEST(ProgressLine, FinishWithoutUpdateWritesNothing) {
  std::ostringstream out;
  ProgressLine line("pretrain", 10, ProgressMode::kInPlace, out);
  line.finish();
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace muse::telemetry
