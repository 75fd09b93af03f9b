// Who this process is among the ranks of a job, and the process-wide MPI
// session that every communicator is built on.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace muse::comm {

// A failure of the distributed runtime: a launch misconfiguration, a
// collective that timed out, ranks that disagree about a collective.
class DistError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The place of this process in the job. Invariants: 0 <= rank < size,
// 0 <= local_rank < local_size, 0 <= node < n_nodes.
struct World {
  int rank = 0;
  int size = 1;
  int local_rank = 0;  // index among the ranks on this node (picks the GPU)
  int local_size = 1;
  int node = 0;  // index of this node, in order of its lowest rank
  int n_nodes = 1;
  std::string launcher = "none";  // "mpirun", "srun", "pmi" or "none"
  std::string hostname;

  bool is_main() const { return rank == 0; }
};

// What the launcher told this process through its environment, before MPI
// starts. Fields are empty when the launcher did not set them.
struct LaunchEnv {
  std::string launcher = "none";
  std::optional<int> rank, size, local_rank, local_size, node, n_nodes;
};

// Reads Open MPI's OMPI_COMM_WORLD_*, PMIx's PMIX_RANK, PMI's PMI_RANK/SIZE
// and Slurm's SLURM_PROCID/NTASKS/LOCALID/NODEID/NNODES/TASKS_PER_NODE.
// `getenv` is injectable so the rules are tested without a launcher.
// Throws DistError when a variable is set but is not a number.
LaunchEnv read_launch_env(const std::function<const char*(const char*)>& getenv);

// Checks the launcher's view against MPI's; a mismatch is a misconfigured
// launch (for example `srun` without `--mpi=pmix`, which starts N
// independent single-rank jobs) and throws DistError saying how to fix it.
void check_launch(const LaunchEnv& env, int mpi_rank, int mpi_size);

// The process-wide distributed session. Starts MPI (with full thread support,
// as communicators make MPI calls from their own threads) when a launcher
// started this process, and stops it on destruction. Without a launcher the
// world is one rank and MPI is never started.
class Session {
 public:
  // Throws DistError on a misconfigured launch.
  static std::unique_ptr<Session> start(int* argc, char*** argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const World& world() const { return world_; }
  bool uses_mpi() const { return uses_mpi_; }

  // Ends the whole job now (every rank), for errors after which ranks can no
  // longer agree, such as a collective that timed out.
  [[noreturn]] void abort(int exit_code) const;

 private:
  Session() = default;
  World world_;
  bool uses_mpi_ = false;
};

}  // namespace muse::comm
