#include "trainer/preemption.h"

#include <ATen/ATen.h>

#include <csignal>
#include <cstring>

namespace muse::trainer {
namespace {

volatile std::sig_atomic_t received_signal = 0;

extern "C" void record_signal(int signal) {
  received_signal = signal;
}

}  // namespace

void install_preemption_handlers() {
  struct sigaction action {};
  action.sa_handler = record_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a blocking read or collective carries on
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

int preemption_signal() {
  return received_signal;
}

int agreed_preemption_signal(comm::Communicator& comm) {
  const at::Tensor s = at::full({1}, static_cast<int64_t>(received_signal), at::kLong);
  comm.all_reduce(s, comm::ReduceOp::kMax);
  return static_cast<int>(s.item<int64_t>());
}

Preempted::Preempted(int signal, int64_t step)
    : std::runtime_error("stopped by " + std::string(strsignal(signal)) + " (signal " +
                         std::to_string(signal) + ") after step " + std::to_string(step) +
                         ": checkpoint saved; launch the same command again to resume"),
      signal_(signal) {}

}  // namespace muse::trainer
