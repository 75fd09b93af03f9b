// Tests of telemetry/log.h: who speaks, on which stream, with which prefix.
#include "telemetry/log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace muse::telemetry {
namespace {

class Log : public ::testing::Test {
 protected:
  void TearDown() override { set_log_rank(0, 1); }

  struct Output {
    std::string out;
    std::string err;
  };
  template <class F>
  static Output capture(F&& f) {
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    f();
    Output o;
    o.err = ::testing::internal::GetCapturedStderr();
    o.out = ::testing::internal::GetCapturedStdout();
    return o;
  }
};

TEST_F(Log, SingleProcess) {
  set_log_rank(0, 1);
  const Output o = capture([] {
    log_info("step 1");
    log_warning("slow step");
    log_error("bad input");
  });
  EXPECT_EQ(o.out, "step 1\n");
  EXPECT_EQ(o.err, "warning: slow step\nerror: bad input\n");
}

TEST_F(Log, RankZeroOfManySpeaksWithoutPrefix) {
  set_log_rank(0, 4);
  const Output o = capture([] {
    log_info("hello");
    log_warning("w");
  });
  EXPECT_EQ(o.out, "hello\n");
  EXPECT_EQ(o.err, "warning: w\n");
}

TEST_F(Log, OtherRanksOnlyWarnAndErrWithPrefix) {
  set_log_rank(3, 4);
  const Output o = capture([] {
    log_info("not shown");
    log_warning("w");
    log_error("e");
  });
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.err, "warning: [rank 3] w\nerror: [rank 3] e\n");
}

// The first observer (the W&B sink, set once the run starts) also receives
// what was printed before it, in order, with each message's stream and time;
// later observers receive only what follows.
TEST_F(Log, FirstObserverReceivesEarlierMessages) {
  set_log_rank(0, 1);
  const auto before = std::chrono::system_clock::now();
  capture([] {
    log_info("early info");
    log_warning("early warning\nsecond line");
  });
  struct Seen {
    std::string text;
    bool is_error;
    std::chrono::system_clock::time_point when;
  };
  std::vector<Seen> seen;
  const auto collect = [&seen](std::string_view text, bool is_error,
                               std::chrono::system_clock::time_point when) {
    seen.push_back({std::string(text), is_error, when});
  };
  set_log_observer(collect);
  ASSERT_GE(seen.size(), 2u);  // earlier tests' messages may come first
  const Seen& info = seen[seen.size() - 2];
  const Seen& warning = seen.back();
  EXPECT_EQ(info.text, "early info");
  EXPECT_FALSE(info.is_error);
  EXPECT_EQ(warning.text, "warning: early warning\nsecond line");
  EXPECT_TRUE(warning.is_error);
  EXPECT_GE(info.when, before);
  EXPECT_LE(info.when, warning.when);
  EXPECT_LE(warning.when, std::chrono::system_clock::now());

  seen.clear();
  set_log_observer(nullptr);
  capture([] { log_info("unobserved"); });
  set_log_observer(collect);
  EXPECT_TRUE(seen.empty());  // only the first observer gets the backlog
  capture([] { log_error("observed"); });
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].text, "error: observed");
  set_log_observer(nullptr);
}

}  // namespace
}  // namespace muse::telemetry
