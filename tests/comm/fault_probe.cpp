// A two-rank program that misbehaves on purpose, for tests that check a
// fault becomes a prompt error instead of a hang:
//   fault_probe timeout   rank 1 never joins rank 0's all_reduce
//   fault_probe die       rank 1 exits abruptly while rank 0 waits
// Rank 0 reports the DistError it gets and ends the job like muse-train does.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <ATen/ATen.h>

#include "comm/communicator.h"
#include "telemetry/log.h"

int main(int argc, char** argv) {
  using namespace muse;
  const std::string mode = argc > 1 ? argv[1] : "";
  const auto session = comm::Session::start(&argc, &argv);
  telemetry::set_log_rank(session->world().rank, session->world().size);
  comm::CommOptions options;
  options.timeout = std::chrono::seconds(mode == "timeout" ? 2 : 60);
  auto comm = comm::make_communicator(*session, "mpi", options);
  comm->barrier();

  if (comm->rank() == 1) {
    if (mode == "die") std::_Exit(7);
    std::this_thread::sleep_for(std::chrono::seconds(120));  // hangs
    return 0;
  }
  try {
    comm->all_reduce(at::ones({4}, at::kFloat));
    std::puts("all_reduce completed (unexpected)");
    return 0;
  } catch (const comm::DistError& e) {
    telemetry::log_error(e.what());
    session->abort(3);
  }
}
