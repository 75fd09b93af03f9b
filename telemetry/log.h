// Console logging that knows its rank: rank 0 speaks for the job; other ranks
// speak only for warnings and errors, prefixed with their rank.
#pragma once

#include <chrono>
#include <functional>
#include <string_view>

namespace muse::telemetry {

// Set once, after the distributed session starts (defaults: rank 0 of 1).
void set_log_rank(int rank, int world_size);

// Called with every message this process prints (without its final newline;
// a message may span lines), whether it went to stderr, and when it was
// printed; the W&B sink forwards console output with it. The first observer
// set also receives what was printed before it (up to kEarlyLogMessages
// messages), so that a run's console starts with its start-up report.
// nullptr removes it.
using LogObserver = std::function<void(std::string_view message, bool is_error,
                                       std::chrono::system_clock::time_point when)>;
void set_log_observer(LogObserver observer);
inline constexpr size_t kEarlyLogMessages = 1000;

// Progress and results, on stdout, from rank 0 only.
void log_info(std::string_view message);
// On stderr from any rank: "warning: ..." or "[rank 3] warning: ...".
void log_warning(std::string_view message);
// On stderr from any rank: "error: ..." or "[rank 3] error: ...".
void log_error(std::string_view message);

}  // namespace muse::telemetry
