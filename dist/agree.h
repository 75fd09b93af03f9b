// Turning a failure on some ranks into a failure on every rank, so a job
// whose rank 3 cannot read its data ends cleanly instead of leaving the other
// ranks waiting in the next collective.
#pragma once

#include <functional>
#include <stdexcept>

#include "dist/communicator.h"

namespace muse::dist {

// What the ranks that did not fail throw when another rank did; the failing
// rank reports the cause, so this one need not be printed.
class PeerFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Runs `work` on every rank, then agrees (one all-reduce) on whether it
// failed anywhere: the lowest rank whose `work` threw rethrows its exception,
// every other rank throws PeerFailure. A DistError from `work` propagates at
// once (the communicator cannot be trusted to agree). Collective.
void run_agreed(Communicator& comm, const std::function<void()>& work);

}  // namespace muse::dist
