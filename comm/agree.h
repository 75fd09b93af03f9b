// Turning a failure on some ranks into a failure on every rank, so a job
// whose rank 3 cannot read its data ends cleanly instead of leaving the other
// ranks waiting in the next collective.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace muse::comm {

// What the ranks that did not fail throw when another rank did; the failing
// rank reports the cause, so this one need not be printed. It says whether
// that cause was a config::ConfigError, so every rank can end with the same
// exit status (a usage error, not a runtime failure).
class PeerFailure : public std::runtime_error {
 public:
  explicit PeerFailure(const std::string& what, bool config_error = false)
      : std::runtime_error(what), config_error_(config_error) {}
  bool config_error() const { return config_error_; }

 private:
  bool config_error_;
};

// Runs `work` on every rank, then agrees (one all-reduce) on whether it
// failed anywhere: the lowest rank whose `work` threw rethrows its exception,
// every other rank throws PeerFailure, marked when that exception was a
// config::ConfigError. A DistError from `work` propagates at once (the
// communicator cannot be trusted to agree). Collective.
void run_agreed(Communicator& comm, const std::function<void()>& work);

// The sum over ranks of a few scalars, in one all-reduce, on every rank.
// Collective.
std::vector<double> sum_over_ranks(Communicator& comm, std::vector<double> values);

// Every rank's `mine`, in rank order, on every rank: how ranks that each
// produced a part of a result (variable-length records) share it. Two
// all-gathers (the sizes, then the padded bytes). Collective.
std::vector<std::string> all_gather_bytes(Communicator& comm, const std::string& mine);

}  // namespace muse::comm
