// Shared by the multi-rank test binaries: the distributed session started by
// mpi_test_main.cpp, and helpers to make per-rank data every rank can
// recompute.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <memory>

#include "comm/communicator.h"
#include "comm/world.h"

namespace muse::testing {

// The session of this test process (started before any test runs).
const comm::Session& session();

// The MPI communicator of this test process (the solo one on 1 rank), with
// fingerprint verification as given and a timeout long enough for a loaded
// machine.
std::unique_ptr<comm::Communicator> make_test_communicator(bool verify = true);

// The tensor rank `rank` contributes in a test: deterministic in (rank, salt),
// so every rank can compute every other rank's input. Integer-valued for
// integer dtypes.
at::Tensor rank_data(int rank, int64_t n, at::ScalarType dtype, int salt = 0);

}  // namespace muse::testing
