#include "telemetry/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace muse::telemetry {
namespace {

// Process-wide by nature: a process has one rank.
std::atomic<int> g_rank{0};
std::atomic<int> g_world_size{1};
std::mutex g_observer_mutex;
LogObserver g_observer;

void emit(FILE* stream, std::string_view level, std::string_view message) {
  // The level comes first ("error: [rank 3] ..."), so every error line of
  // any rank starts with "error:".
  std::string line(level);
  if (g_world_size > 1 && g_rank != 0) line += "[rank " + std::to_string(g_rank) + "] ";
  line.append(message).push_back('\n');
  // One write per line so lines of concurrent ranks do not interleave.
  std::fwrite(line.data(), 1, line.size(), stream);
  std::fflush(stream);
  std::lock_guard lock(g_observer_mutex);
  if (g_observer) g_observer(std::string_view(line).substr(0, line.size() - 1), stream == stderr);
}

}  // namespace

void set_log_rank(int rank, int world_size) {
  g_rank = rank;
  g_world_size = world_size;
}

void set_log_observer(LogObserver observer) {
  std::lock_guard lock(g_observer_mutex);
  g_observer = std::move(observer);
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
