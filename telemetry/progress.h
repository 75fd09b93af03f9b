// The progress line rank 0 shows during long work:
//   pretrain  step 120/1000 | loss 3.2141 | 12.4k tok/s | 0.41 s/step | ETA 6m01s | mem 1.3 GiB
// On a terminal the line is rewritten in place; otherwise (Slurm logs, pipes)
// each update is a new line.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

namespace muse::telemetry {

// "45s", "6m01s", "2h05m", "3d04h"; "?" for a negative or non-finite value.
std::string format_duration(double seconds);
// "950", "12.4k", "3.1M", "1.2G", "1T" (3 significant digits).
std::string format_count(double count);
// "512 MiB", "1.3 GiB".
std::string format_bytes(double bytes);
// "0.367", "13.1", "2e-04": 3 significant digits, for losses, rates, rewards.
std::string format_number(double x);

// Resident memory of this process now and at its peak (from /proc/self/status),
// in bytes; 0 where the platform does not say.
int64_t current_rss_bytes();
int64_t peak_rss_bytes();

enum class ProgressMode { kInPlace, kLines, kOff };

// "auto" picks in-place on a terminal, lines otherwise; "lines"; "off".
// Throws std::invalid_argument on anything else.
ProgressMode progress_mode(const std::string& setting, bool stdout_is_terminal);

class ProgressLine {
 public:
  using Clock = std::chrono::steady_clock;

  // `total_steps` > 0. Steps are counted from `first_step` (non-zero on
  // resume), whose end is `start`.
  ProgressLine(std::string label, int64_t total_steps, ProgressMode mode, std::ostream& out,
               int64_t first_step = 0, Clock::time_point start = Clock::now());

  // Records that `step` finished at `now`, having processed `tokens`; `fields`
  // (name, formatted value) are shown after the step counter.
  void update(int64_t step, int64_t tokens,
              const std::vector<std::pair<std::string, std::string>>& fields,
              Clock::time_point now = Clock::now());
  // Ends an in-place line with a newline.
  void finish();

  // The text of the last update, without terminal control characters.
  const std::string& text() const { return text_; }
  double tokens_per_second() const;
  double seconds_per_step() const;
  double eta_seconds() const;

 private:
  std::string label_;
  int64_t total_;
  ProgressMode mode_;
  std::ostream& out_;
  int64_t last_step_;
  Clock::time_point last_time_;
  // Recent (steps, tokens, seconds) intervals: rates follow the current speed,
  // not the start-up.
  struct Interval {
    int64_t steps;
    int64_t tokens;
    double seconds;
  };
  std::deque<Interval> window_;
  std::string text_;
  bool line_open_ = false;
};

}  // namespace muse::telemetry
