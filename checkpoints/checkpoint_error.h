// The errors of checkpoints/, apart so that code without LibTorch (the
// safetensors header check, its fuzzer) can throw them.
#pragma once

#include <stdexcept>

namespace muse::checkpoints {

// A checkpoint that cannot be written, or cannot be trusted when read. The
// message starts with the file at fault: "PATH: problem".
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The same failure as seen by the ranks that did not cause it (a collective
// save fails on every rank): launchers print CheckpointError but not this, so
// a job reports the failure once, from the rank it happened on.
class PeerCheckpointError : public CheckpointError {
 public:
  using CheckpointError::CheckpointError;
};

}  // namespace muse::checkpoints
