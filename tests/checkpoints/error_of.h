// Shared by the checkpoint tests: the message of an expected CheckpointError.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "checkpoints/checkpoint.h"

namespace muse::checkpoints::testing {

// The message of the CheckpointError `call` throws (a test failure if none).
inline std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const CheckpointError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no CheckpointError";
  return {};
}

}  // namespace muse::checkpoints::testing
