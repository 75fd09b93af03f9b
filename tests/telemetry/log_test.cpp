// Tests of telemetry/log.h: who speaks, on which stream, with which prefix.
#include "telemetry/log.h"

#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace muse::telemetry
