// The `dist.*` config section.
#pragma once

#include <string>

#include "config/schema.h"

namespace muse::comm {

struct DistConfig {
  std::string backend = "auto";
  double collective_timeout_s = 300;
  bool verify_collectives = true;

  template <class V>
  void visit(V& v) {
    v.field("backend", backend,
            {.help = "communicator: auto (NCCL when built with CUDA and a GPU is present, else "
                     "MPI), mpi or nccl",
             .choices = {"auto", "mpi", "nccl"}});
    v.field("collective_timeout_s", collective_timeout_s,
            {.help = "a collective not complete after this long is an error (a rank failed or "
                     "diverged) instead of a hang",
             .unit = "s",
             .gt = 0});
    v.field("verify_collectives", verify_collectives,
            {.help = "before each collective, check that all ranks call the same one with the "
                     "same shape and dtype (one small extra message per collective)"});
  }
};

}  // namespace muse::comm
