#include "telemetry/log.h"

#include <atomic>
#include <cstdio>
#include <string>

namespace muse::telemetry {
namespace {

// Process-wide by nature: a process has one rank.
std::atomic<int> g_rank{0};
std::atomic<int> g_world_size{1};

void emit(FILE* stream, std::string_view level, std::string_view message) {
  // The level comes first ("error: [rank 3] ..."), so every error line of
  // any rank starts with "error:".
  std::string line(level);
  if (g_world_size > 1 && g_rank != 0) line += "[rank " + std::to_string(g_rank) + "] ";
  line.append(message).push_back('\n');
  // One write per line so lines of concurrent ranks do not interleave.
  std::fwrite(line.data(), 1, line.size(), stream);
  std::fflush(stream);
}

}  // namespace

void set_log_rank(int rank, int world_size) {
  g_rank = rank;
  g_world_size = world_size;
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
