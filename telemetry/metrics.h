// Metrics records and the sinks they go to.
//
// A record is one JSON object: training records have `step` and `loss`, RL
// records `step`, `reward_mean`, `accuracy`, `think_tokens_mean`, evaluation
// records `"eval": NAME` (see DESIGN.md); keys keep their insertion order.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace muse::telemetry {

using Value = std::variant<int64_t, double, bool, std::string>;

class Record {
 public:
  Record& add(std::string key, Value value) { return add_value(std::move(key), std::move(value)); }
  // One overload per stored type, so a number never converts to another kind.
  Record& add(std::string key, int64_t value) { return add_value(std::move(key), value); }
  Record& add(std::string key, int value) { return add_value(std::move(key), int64_t{value}); }
  Record& add(std::string key, double value) { return add_value(std::move(key), value); }
  Record& add(std::string key, bool value) { return add_value(std::move(key), value); }
  Record& add(std::string key, std::string value) {
    return add_value(std::move(key), std::move(value));
  }
  Record& add(std::string key, const char* value) {
    return add_value(std::move(key), std::string(value));
  }
  const std::vector<std::pair<std::string, Value>>& fields() const { return fields_; }
  // The value of `key`, or nullptr.
  const Value* find(std::string_view key) const;

 private:
  Record& add_value(std::string key, Value value);
  std::vector<std::pair<std::string, Value>> fields_;
};

// {"step": 3, "loss": 2.5}: one line, no newline. Non-finite numbers become
// null, as JSON has no NaN or infinity.
std::string to_json(const Record& record);
std::string json_quote(std::string_view text);

// Where records go: the metrics file, later Weights & Biases.
class MetricsSink {
 public:
  virtual ~MetricsSink() = default;
  virtual void write(const Record& record) = 0;
  virtual void flush() {}
};

// Appends one JSON object per line to a file (created if missing, appended to
// on resume), flushed after every record so a crash loses nothing written.
class JsonlSink final : public MetricsSink {
 public:
  // Throws std::runtime_error naming the path when it cannot be opened.
  explicit JsonlSink(const std::string& path);
  void write(const Record& record) override;
  void flush() override;

 private:
  std::string path_;
  std::ofstream out_;
};

// On resume from a checkpoint of step `step`: rewrites the metrics file at
// `path` (atomically) without the records of later steps, which the resumed
// run will write again. A run that starts over passes -1, which drops step
// 0's records (its evaluations before the first step) too. Lines without a
// "step" are kept; a missing file is fine. Throws std::runtime_error naming
// the path when it cannot be rewritten.
void drop_records_after(const std::string& path, int64_t step);

// Fans records out to every sink.
class Metrics {
 public:
  void add_sink(std::unique_ptr<MetricsSink> sink) { sinks_.push_back(std::move(sink)); }
  void write(const Record& record);
  void flush();

 private:
  std::vector<std::unique_ptr<MetricsSink>> sinks_;
};

}  // namespace muse::telemetry
