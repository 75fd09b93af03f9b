// Tests of Record::add with plain C++ values (ints, doubles, bools, strings).

// Each kind of value keeps its kind: a regression here once made add() with
// an int recurse forever and truncated doubles to integers.
#include "telemetry/metrics.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace muse::telemetry {
namespace {

TEST(RecordAdd, Int) {
  Record r;
  r.add("step", 3);
  ASSERT_NE(r.find("step"), nullptr);
  EXPECT_EQ(std::get<int64_t>(*r.find("step")), 3);
  EXPECT_EQ(to_json(r), "{\"step\": 3}");
}

TEST(RecordAdd, Int64) {
  Record r;
  int64_t tokens = int64_t{1} << 40;  // not const: no compile-time narrowing warning
  r.add("tokens", tokens);
  EXPECT_EQ(to_json(r), "{\"tokens\": 1099511627776}");
}

TEST(RecordAdd, Double) {
  Record r;
  r.add("loss", 2.5);
  EXPECT_EQ(to_json(r), "{\"loss\": 2.5}");
}

TEST(RecordAdd, Bool) {
  Record r;
  r.add("ok", true);
  EXPECT_EQ(to_json(r), "{\"ok\": true}");
}

TEST(RecordAdd, Strings) {
  Record r;
  r.add("eval", "gsm8k").add("name", std::string("pretrain"));
  EXPECT_EQ(to_json(r), "{\"eval\": \"gsm8k\", \"name\": \"pretrain\"}");
}

TEST(RecordAdd, ChainOfEveryType) {
  Record r;
  r.add("step", 3).add("loss", 2.5).add("ok", false).add("eval", "x");
  EXPECT_EQ(to_json(r), "{\"step\": 3, \"loss\": 2.5, \"ok\": false, \"eval\": \"x\"}");
}

}  // namespace
}  // namespace muse::telemetry
