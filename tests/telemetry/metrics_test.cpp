// Tests of telemetry/metrics.h: JSON records, the JSONL file sink and fan-out.
#include "telemetry/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cfloat>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/temp_dir.h"

namespace muse::telemetry {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace std::string_literals;

// Records are built from explicit Values here: Record::add(key, int) is
// broken (see record_test.cpp), and every int, double and bool argument of
// add() goes through it.
Record rec(std::initializer_list<std::pair<std::string, Value>> fields) {
  Record r;
  for (const auto& [key, value] : fields)
    r.add(key, value);
  return r;
}

TEST(Record, KeepsOrderAndFinds) {
  const Record r = rec({{"step", 3}, {"loss", 2.5}, {"ok", true}, {"name", "pretrain"s}});
  ASSERT_EQ(r.fields().size(), 4u);
  EXPECT_EQ(r.fields()[0].first, "step");
  EXPECT_EQ(r.fields()[3].first, "name");
  ASSERT_NE(r.find("loss"), nullptr);
  EXPECT_EQ(std::get<double>(*r.find("loss")), 2.5);
  EXPECT_EQ(std::get<int64_t>(*r.find("step")), 3);
  EXPECT_EQ(std::get<bool>(*r.find("ok")), true);
  EXPECT_EQ(std::get<std::string>(*r.find("name")), "pretrain");
  EXPECT_EQ(r.find("missing"), nullptr);
}

// --- to_json ---------------------------------------------------------------------------

TEST(ToJson, KeyOrderIsInsertionOrder) {
  const Record r = rec({{"z", 1}, {"a", 2}, {"m", 3}});
  EXPECT_EQ(to_json(r), "{\"z\": 1, \"a\": 2, \"m\": 3}");
  EXPECT_EQ(to_json(Record{}), "{}");
}

TEST(ToJson, Integers) {
  const Record r = rec({{"zero", 0},
                        {"neg", -17},
                        {"max", std::numeric_limits<int64_t>::max()},
                        {"min", std::numeric_limits<int64_t>::min()}});
  EXPECT_EQ(to_json(r),
            "{\"zero\": 0, \"neg\": -17, \"max\": 9223372036854775807, \"min\": "
            "-9223372036854775808}");
}

TEST(ToJson, DoublesAreShortestRoundTrip) {
  const Record r =
      rec({{"a", 2.5}, {"b", 0.1}, {"c", 1e-7}, {"d", 1.0 / 3}, {"e", 0.1 + 0.2}, {"f", 1e21}});
  EXPECT_EQ(to_json(r),
            "{\"a\": 2.5, \"b\": 0.1, \"c\": 1e-07, \"d\": 0.3333333333333333, \"e\": "
            "0.30000000000000004, \"f\": 1e+21}");
  for (double v : {0.1, 1.0 / 3, 3.14159, 1e-300, DBL_MAX, -DBL_MIN, 123456.789}) {
    const std::string json = to_json(rec({{"v", v}}));
    const std::string number = json.substr(6, json.size() - 7);  // {"v": NUMBER}
    EXPECT_EQ(std::strtod(number.c_str(), nullptr), v) << json;
  }
}

TEST(ToJson, NonFiniteBecomesNull) {
  const Record r = rec({{"nan", std::numeric_limits<double>::quiet_NaN()},
                        {"inf", std::numeric_limits<double>::infinity()},
                        {"ninf", -std::numeric_limits<double>::infinity()}});
  EXPECT_EQ(to_json(r), "{\"nan\": null, \"inf\": null, \"ninf\": null}");
}

TEST(ToJson, Bools) {
  const Record r = rec({{"t", true}, {"f", false}});
  EXPECT_EQ(to_json(r), "{\"t\": true, \"f\": false}");
}

TEST(ToJson, StringsAreEscaped) {
  EXPECT_EQ(to_json(rec({{"s", "say \"hi\" \\ path\nnext\ttab\rcr"s}})),
            R"({"s": "say \"hi\" \\ path\nnext\ttab\rcr"})");
  EXPECT_EQ(to_json(rec({{"c", std::string("a\x01"
                                           "b\x1f"
                                           "c\x7f",
                                           6)}})),
            "{\"c\": \"a\\u0001b\\u001fc\x7f\"}");
  EXPECT_EQ(to_json(rec({{"n", std::string("x\0y", 3)}})), "{\"n\": \"x\\u0000y\"}");
  // Keys are escaped the same way; UTF-8 passes through.
  EXPECT_EQ(to_json(rec({{"we\"ird", "héllo"s}})), "{\"we\\\"ird\": \"héllo\"}");
  // A decoded answer that ends inside a character stays valid JSON: U+FFFD.
  EXPECT_EQ(to_json(rec({{"text", "= 70\xA2"s}})), "{\"text\": \"= 70\xEF\xBF\xBD\"}");
}

TEST(JsonQuote, Direct) {
  EXPECT_EQ(json_quote(""), "\"\"");
  EXPECT_EQ(json_quote("eval"), "\"eval\"");
  EXPECT_EQ(json_quote("\b\f"), "\"\\u0008\\u000c\"");
}

// --- JsonlSink -------------------------------------------------------------------------

class JsonlSinkTest : public ::testing::Test {
 protected:
  static std::vector<std::string> read_lines(const fs::path& p, std::string* raw = nullptr) {
    std::ifstream in(p, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (raw) *raw = all;
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t nl; (nl = all.find('\n', start)) != std::string::npos; start = nl + 1) {
      lines.push_back(all.substr(start, nl - start));
    }
    EXPECT_EQ(start, all.size()) << "file does not end with a newline: " << all;
    return lines;
  }
  muse::testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
};

TEST_F(JsonlSinkTest, OneObjectPerLineFlushedAtOnce) {
  const fs::path p = dir_ / "metrics.jsonl";
  JsonlSink sink(p.string());
  EXPECT_TRUE(fs::exists(p));  // created when opened
  EXPECT_TRUE(read_lines(p).empty());
  sink.write(rec({{"step", 1}, {"loss", 3.5}}));
  // Readable at once, while the sink is still open.
  EXPECT_EQ(read_lines(p), (std::vector<std::string>{"{\"step\": 1, \"loss\": 3.5}"}));
  sink.write(rec({{"step", 2}, {"loss", 3.25}, {"note", "a\nb"s}}));
  EXPECT_EQ(read_lines(p), (std::vector<std::string>{"{\"step\": 1, \"loss\": 3.5}",
                                                     "{\"step\": 2, \"loss\": 3.25, \"note\": "
                                                     "\"a\\nb\"}"}));
  sink.flush();
  EXPECT_EQ(read_lines(p).size(), 2u);
}

TEST_F(JsonlSinkTest, ReopeningAppends) {
  const fs::path p = dir_ / "metrics.jsonl";
  {
    JsonlSink first(p.string());
    first.write(rec({{"step", 1}}));
    first.write(rec({{"step", 2}}));
  }
  {
    JsonlSink resumed(p.string());
    resumed.write(rec({{"step", 3}}));
    EXPECT_EQ(read_lines(p),
              (std::vector<std::string>{"{\"step\": 1}", "{\"step\": 2}", "{\"step\": 3}"}));
  }
  EXPECT_EQ(read_lines(p).size(), 3u);
}

TEST_F(JsonlSinkTest, UnopenablePathThrowsNamingIt) {
  const std::string p = (dir_ / "missing_dir" / "metrics.jsonl").string();
  try {
    JsonlSink sink(p);
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(p));
    EXPECT_THAT(e.what(), HasSubstr("cannot open"));
  }
  // A directory is not a file either.
  try {
    JsonlSink sink(dir_.string());
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(dir_.string()));
  }
}

// --- drop_records_after ----------------------------------------------------------------------

// A crashed launch's file: step 0's evaluation, steps 1-3 and step 2's evaluation.
void write_crashed_run(const fs::path& p) {
  JsonlSink sink(p.string());
  for (const Record& r :
       {rec({{"step", 0}, {"eval", "heldout"s}}), rec({{"step", 1}}), rec({{"step", 2}}),
        rec({{"step", 2}, {"eval", "heldout"s}}), rec({{"step", 3}})})
    sink.write(r);
}

TEST_F(JsonlSinkTest, ResumeDropsTheStepsAfterTheCheckpoint) {
  const fs::path p = dir_ / "metrics.jsonl";
  write_crashed_run(p);
  drop_records_after(p.string(), 2);
  EXPECT_EQ(read_lines(p),
            (std::vector<std::string>{"{\"step\": 0, \"eval\": \"heldout\"}", "{\"step\": 1}",
                                      "{\"step\": 2}", "{\"step\": 2, \"eval\": \"heldout\"}"}));
}

TEST_F(JsonlSinkTest, StartingOverDropsStepZerosEvaluationsToo) {
  const fs::path p = dir_ / "metrics.jsonl";
  write_crashed_run(p);
  drop_records_after(p.string(), -1);
  EXPECT_TRUE(read_lines(p).empty());
}

// --- Metrics fan-out -------------------------------------------------------------------------

// Keeps what it is given, in shared state the test can still read after the
// sink has been handed to Metrics.
struct Recorded {
  std::vector<std::string> records;
  int flushes = 0;
};

class RecordingSink final : public MetricsSink {
 public:
  explicit RecordingSink(std::shared_ptr<Recorded> out) : out_(std::move(out)) {}
  void write(const Record& record) override { out_->records.push_back(to_json(record)); }
  void flush() override { ++out_->flushes; }

 private:
  std::shared_ptr<Recorded> out_;
};

TEST(Metrics, FansOutToEverySinkInOrder) {
  auto a = std::make_shared<Recorded>();
  auto b = std::make_shared<Recorded>();
  Metrics metrics;
  metrics.add_sink(std::make_unique<RecordingSink>(a));
  metrics.add_sink(std::make_unique<RecordingSink>(b));
  metrics.write(rec({{"step", 1}, {"loss", 2.0}}));
  metrics.write(rec({{"eval", "gsm8k"s}, {"accuracy", 0.5}}));
  const std::vector<std::string> expected = {"{\"step\": 1, \"loss\": 2}",
                                             "{\"eval\": \"gsm8k\", \"accuracy\": 0.5}"};
  EXPECT_EQ(a->records, expected);
  EXPECT_EQ(b->records, expected);
  EXPECT_EQ(a->flushes, 0);
  metrics.flush();
  EXPECT_EQ(a->flushes, 1);
  EXPECT_EQ(b->flushes, 1);
}

TEST(Metrics, NoSinksIsFine) {
  Metrics metrics;
  metrics.write(rec({{"step", 1}}));
  metrics.flush();
}

}  // namespace
}  // namespace muse::telemetry
