#include "telemetry/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace muse::telemetry {
namespace {

// Process-wide by nature: a process has one rank.
std::atomic<int> g_rank{0};
std::atomic<int> g_world_size{1};
std::mutex g_observer_mutex;
LogObserver g_observer;

struct EarlyMessage {
  std::string text;
  bool is_error;
  std::chrono::system_clock::time_point when;
};
// What was printed before the first observer, for it; not kept after.
std::vector<EarlyMessage> g_early;
bool g_keep_early = true;

void emit(FILE* stream, std::string_view level, std::string_view message) {
  // The level comes first ("error: [rank 3] ..."), so every error line of
  // any rank starts with "error:".
  std::string line(level);
  if (g_world_size > 1 && g_rank != 0) line += "[rank " + std::to_string(g_rank) + "] ";
  line.append(message).push_back('\n');
  // One write per line so lines of concurrent ranks do not interleave.
  std::fwrite(line.data(), 1, line.size(), stream);
  std::fflush(stream);
  const std::string_view text = std::string_view(line).substr(0, line.size() - 1);
  const auto now = std::chrono::system_clock::now();
  std::lock_guard lock(g_observer_mutex);
  if (g_observer) {
    g_observer(text, stream == stderr, now);
  } else if (g_keep_early && g_early.size() < kEarlyLogMessages) {
    g_early.push_back({std::string(text), stream == stderr, now});
  }
}

}  // namespace

void set_log_rank(int rank, int world_size) {
  g_rank = rank;
  g_world_size = world_size;
}

void set_log_observer(LogObserver observer) {
  std::lock_guard lock(g_observer_mutex);
  g_observer = std::move(observer);
  if (!g_observer) return;
  for (const EarlyMessage& m : g_early)
    g_observer(m.text, m.is_error, m.when);
  g_early.clear();
  g_early.shrink_to_fit();
  g_keep_early = false;
}

void log_info(std::string_view message) {
  if (g_rank == 0) emit(stdout, "", message);
}

void log_warning(std::string_view message) {
  emit(stderr, "warning: ", message);
}

void log_error(std::string_view message) {
  emit(stderr, "error: ", message);
}

}  // namespace muse::telemetry
