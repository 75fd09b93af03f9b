// MPI return codes as DistErrors (comm/ internal).
#pragma once

#include <mpi.h>

#include <string>

#include "comm/world.h"

namespace muse::comm {

// Throws DistError "WHAT failed: <MPI's text for rc>" unless rc is MPI_SUCCESS.
inline void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw DistError(std::string(what) + " failed: " + std::string(text, length));
}

}  // namespace muse::comm
