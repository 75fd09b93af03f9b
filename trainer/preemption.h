// Preemption: schedulers announce the end of a job with a signal (Slurm
// sends SIGTERM before preempting or at the time limit, or a signal chosen
// with `sbatch --signal`, e.g. SIGUSR1). muse-train catches SIGTERM and
// SIGUSR1, finishes the step in progress, saves a checkpoint on every rank
// and exits with kExitPreempted; launching the same command again resumes
// from that checkpoint (docs/cluster.md).
#pragma once

#include <stdexcept>
#include <string>

#include "comm/communicator.h"

namespace muse::trainer {

// The exit status of a run stopped by a signal after saving its checkpoint.
inline constexpr int kExitPreempted = 3;

// Installs the SIGTERM and SIGUSR1 handlers (they only record the signal).
void install_preemption_handlers();

// The signal this process received (0 when none).
int preemption_signal();

// The signal any rank received (0 when none): one all-reduce. Collective.
int agreed_preemption_signal(comm::Communicator& comm);

// What the step loop throws once the checkpoint of a preempted run is saved.
class Preempted : public std::runtime_error {
 public:
  Preempted(int signal, int64_t step);
  int signal() const { return signal_; }

 private:
  int signal_;
};

}  // namespace muse::trainer
