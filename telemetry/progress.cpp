#include "telemetry/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <ostream>
#include <stdexcept>

namespace muse::telemetry {
namespace {

constexpr size_t kWindow = 20;  // intervals averaged for rates and ETA

int64_t status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stoll(line.substr(prefix.size()));
  }
  return 0;
}

std::string printf_string(const char* format, double a, double b = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, a, b);
  return buf;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buf;
}

std::string format_number(double x) {
  return printf_string("%.3g", x);
}

std::string format_count(double count) {
  if (!std::isfinite(count)) return "?";
  // Pick the unit after rounding to 3 significant digits, so 999999 is "1M",
  // not "1e+03k".
  static constexpr const char* kUnits[] = {"", "k", "M", "G", "T"};
  double scaled = count;
  int unit = 0;
  while (unit < 4 && std::fabs(scaled) >= 999.5) {
    scaled /= 1e3;
    ++unit;
  }
  if (unit == 0) return printf_string("%.0f", scaled);
  return printf_string("%.3g", scaled) + kUnits[unit];
}

std::string format_bytes(double bytes) {
  bytes = std::max(0.0, bytes);
  if (bytes < 1024.0 * 1024 * 1024) return printf_string("%.0f MiB", bytes / (1024.0 * 1024));
  return printf_string("%.1f GiB", bytes / (1024.0 * 1024 * 1024));
}

int64_t current_rss_bytes() {
  return status_kib("VmRSS") * 1024;
}
int64_t peak_rss_bytes() {
  return status_kib("VmHWM") * 1024;
}

ProgressMode progress_mode(const std::string& setting, bool stdout_is_terminal) {
  if (setting == "auto") return stdout_is_terminal ? ProgressMode::kInPlace : ProgressMode::kLines;
  if (setting == "lines") return ProgressMode::kLines;
  if (setting == "off") return ProgressMode::kOff;
  throw std::invalid_argument("progress mode '" + setting + "' (expected auto, lines or off)");
}

ProgressLine::ProgressLine(std::string label, int64_t total_steps, ProgressMode mode,
                           std::ostream& out, int64_t first_step, Clock::time_point start)
    : label_(std::move(label)),
      total_(total_steps),
      mode_(mode),
      out_(out),
      last_step_(first_step),
      last_time_(start) {}

double ProgressLine::tokens_per_second() const {
  int64_t tokens = 0;
  double seconds = 0;
  for (const auto& i : window_) {
    tokens += i.tokens;
    seconds += i.seconds;
  }
  return seconds > 0 ? tokens / seconds : 0;
}

double ProgressLine::seconds_per_step() const {
  int64_t steps = 0;
  double seconds = 0;
  for (const auto& i : window_) {
    steps += i.steps;
    seconds += i.seconds;
  }
  return steps > 0 ? seconds / steps : 0;
}

double ProgressLine::eta_seconds() const {
  if (window_.empty()) return -1;
  return static_cast<double>(total_ - last_step_) * seconds_per_step();
}

void ProgressLine::update(int64_t step, int64_t tokens,
                          const std::vector<std::pair<std::string, std::string>>& fields,
                          Clock::time_point now) {
  window_.push_back(
      {step - last_step_, tokens, std::chrono::duration<double>(now - last_time_).count()});
  if (window_.size() > kWindow) window_.pop_front();
  last_step_ = step;
  last_time_ = now;

  text_ = label_ + "  step " + std::to_string(step) + "/" + std::to_string(total_);
  for (const auto& [name, value] : fields)
    text_ += " | " + name + " " + value;
  if (tokens > 0) text_ += " | " + format_count(tokens_per_second()) + " tok/s";
  text_ += " | " + printf_string("%.3g", seconds_per_step()) + " s/step";
  text_ += " | ETA " + format_duration(eta_seconds());
  text_ += " | mem " + format_bytes(static_cast<double>(current_rss_bytes()));

  switch (mode_) {
    case ProgressMode::kOff:
      return;
    case ProgressMode::kLines:
      out_ << text_ << '\n' << std::flush;
      return;
    case ProgressMode::kInPlace:
      out_ << '\r' << text_ << "\x1b[K" << std::flush;
      line_open_ = true;
      return;
  }
}

void ProgressLine::finish() {
  if (line_open_) out_ << '\n' << std::flush;
  line_open_ = false;
}

}  // namespace muse::telemetry
