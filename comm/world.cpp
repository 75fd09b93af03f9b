#include "comm/world.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "comm/mpi_error.h"

namespace muse::comm {
namespace {

std::optional<int> env_int(const std::function<const char*(const char*)>& getenv,
                           const char* name) {
  const char* text = getenv(name);
  if (!text || !*text) return std::nullopt;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (*end != '\0' || value < 0) {
    throw DistError(std::string("environment variable ") + name + "='" + text +
                    "' is not a non-negative integer");
  }
  return static_cast<int>(value);
}

// SLURM_TASKS_PER_NODE looks like "2(x3),1": the first count is this node's
// when tasks are spread evenly, which is all we use it for (a hint).
std::optional<int> first_count(const char* text) {
  if (!text || !*text) return std::nullopt;
  return std::atoi(text);
}

}  // namespace

LaunchEnv read_launch_env(const std::function<const char*(const char*)>& getenv) {
  LaunchEnv env;
  if (auto rank = env_int(getenv, "OMPI_COMM_WORLD_RANK")) {
    env.launcher = "mpirun";
    env.rank = rank;
    env.size = env_int(getenv, "OMPI_COMM_WORLD_SIZE");
    env.local_rank = env_int(getenv, "OMPI_COMM_WORLD_LOCAL_RANK");
    env.local_size = env_int(getenv, "OMPI_COMM_WORLD_LOCAL_SIZE");
    return env;
  }
  if (auto rank = env_int(getenv, "SLURM_PROCID"); rank && getenv("SLURM_STEP_ID")) {
    // Inside an srun step (an sbatch script alone sets SLURM_PROCID=0 too).
    env.launcher = "srun";
    env.rank = rank;
    env.size = env_int(getenv, "SLURM_NTASKS");
    env.local_rank = env_int(getenv, "SLURM_LOCALID");
    env.node = env_int(getenv, "SLURM_NODEID");
    env.n_nodes = env_int(getenv, "SLURM_NNODES");
    env.local_size = first_count(getenv("SLURM_TASKS_PER_NODE"));
    return env;
  }
  if (auto rank = env_int(getenv, "PMIX_RANK")) {
    env.launcher = "pmi";
    env.rank = rank;
    return env;
  }
  if (auto rank = env_int(getenv, "PMI_RANK")) {
    env.launcher = "pmi";
    env.rank = rank;
    env.size = env_int(getenv, "PMI_SIZE");
    return env;
  }
  return env;
}

void check_launch(const LaunchEnv& env, int mpi_rank, int mpi_size) {
  if (env.size && *env.size != mpi_size) {
    std::string hint = env.launcher == "srun"
                           ? "; start MPI ranks with `srun --mpi=pmix` (see `srun --mpi=list`) "
                             "or run `mpirun` inside the allocation"
                           : "";
    throw DistError(env.launcher + " started " + std::to_string(*env.size) +
                    " tasks but MPI sees a world of " + std::to_string(mpi_size) + " rank(s)" +
                    hint);
  }
  if (env.rank && *env.rank != mpi_rank) {
    throw DistError(env.launcher + " says this is rank " + std::to_string(*env.rank) +
                    " but MPI says rank " + std::to_string(mpi_rank));
  }
}

std::unique_ptr<Session> Session::start(int* argc, char*** argv) {
  std::unique_ptr<Session> session(new Session());
  World& w = session->world_;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  w.hostname = host;

  const LaunchEnv env = read_launch_env([](const char* name) { return std::getenv(name); });
  w.launcher = env.launcher;
  if (env.launcher == "none") return session;  // a world of one, no MPI

  // A collective waiting for another rank runs Open MPI's progress loop,
  // which spins; with yield_when_idle it gives the core to runnable threads
  // (the rank's own compute, when ranks share cores) while nothing arrives.
  // Measured on 2 ranks sharing 2 cores: a quarter less CPU per step. A value
  // from the environment (e.g. 0 on dedicated cores) is kept.
  setenv("OMPI_MCA_mpi_yield_when_idle", "1", /*overwrite=*/0);
  int provided = 0;
  check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init_thread");
  session->uses_mpi_ = true;
  if (provided < MPI_THREAD_MULTIPLE) {
    throw DistError(
        "the MPI library does not provide MPI_THREAD_MULTIPLE, which muse-train's "
        "communicators need (Open MPI: built with --enable-mpi-thread-multiple)");
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size);
  check_launch(env, w.rank, w.size);

  // Ranks sharing memory are one node: local rank/size from a shared split,
  // node index by numbering the local leaders.
  MPI_Comm local = MPI_COMM_NULL;
  check_mpi(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w.rank, MPI_INFO_NULL, &local),
      "MPI_Comm_split_type");
  MPI_Comm_rank(local, &w.local_rank);
  MPI_Comm_size(local, &w.local_size);
  MPI_Comm leaders = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split(MPI_COMM_WORLD, w.local_rank == 0 ? 0 : MPI_UNDEFINED, w.rank, &leaders),
            "MPI_Comm_split");
  int node = 0;
  if (w.local_rank == 0) {
    MPI_Comm_rank(leaders, &node);
    MPI_Comm_size(leaders, &w.n_nodes);
    MPI_Comm_free(&leaders);
  }
  MPI_Bcast(&node, 1, MPI_INT, 0, local);
  MPI_Comm_free(&local);
  w.node = node;
  MPI_Allreduce(MPI_IN_PLACE, &w.n_nodes, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return session;
}

Session::~Session() {
  if (!uses_mpi_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void Session::abort(int exit_code) const {
  if (uses_mpi_) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace muse::comm
