// Launcher discovery and the checks that catch misconfigured launches.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "comm/world.h"

namespace muse::comm {
namespace {

LaunchEnv read(const std::map<std::string, std::string>& vars) {
  return read_launch_env([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(LaunchEnv, NoLauncherMeansAWorldOfOne) {
  const LaunchEnv env = read({});
  EXPECT_EQ(env.launcher, "none");
  EXPECT_FALSE(env.rank);
  EXPECT_FALSE(env.size);
}

TEST(LaunchEnv, OpenMpiVariables) {
  const LaunchEnv env = read({{"OMPI_COMM_WORLD_RANK", "3"},
                              {"OMPI_COMM_WORLD_SIZE", "8"},
                              {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                              {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  EXPECT_EQ(env.launcher, "mpirun");
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_size, 2);
}

TEST(LaunchEnv, SrunStepVariables) {
  const LaunchEnv env = read({{"SLURM_PROCID", "5"},
                              {"SLURM_STEP_ID", "0"},
                              {"SLURM_NTASKS", "16"},
                              {"SLURM_LOCALID", "1"},
                              {"SLURM_NODEID", "2"},
                              {"SLURM_NNODES", "4"},
                              {"SLURM_TASKS_PER_NODE", "4(x4)"}});
  EXPECT_EQ(env.launcher, "srun");
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.size, 16);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.local_size, 4);
  EXPECT_EQ(env.node, 2);
  EXPECT_EQ(env.n_nodes, 4);
}

TEST(LaunchEnv, BatchScriptWithoutSrunIsNotALaunch) {
  // sbatch sets SLURM_PROCID=0 for the batch script itself, outside any step.
  EXPECT_EQ(read({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}}).launcher, "none");
}

TEST(LaunchEnv, OpenMpiWinsOverSlurmInsideAnAllocation) {
  const LaunchEnv env = read({{"OMPI_COMM_WORLD_RANK", "1"},
                              {"OMPI_COMM_WORLD_SIZE", "2"},
                              {"SLURM_PROCID", "0"},
                              {"SLURM_STEP_ID", "0"},
                              {"SLURM_NTASKS", "1"}});
  EXPECT_EQ(env.launcher, "mpirun");
  EXPECT_EQ(env.size, 2);
}

TEST(LaunchEnv, PmiVariables) {
  EXPECT_EQ(read({{"PMIX_RANK", "2"}}).rank, 2);
  const LaunchEnv env = read({{"PMI_RANK", "1"}, {"PMI_SIZE", "3"}});
  EXPECT_EQ(env.launcher, "pmi");
  EXPECT_EQ(env.size, 3);
}

TEST(LaunchEnv, GarbageIsAnErrorNamingTheVariable) {
  try {
    read({{"OMPI_COMM_WORLD_RANK", "one"}});
    FAIL();
  } catch (const DistError& e) {
    EXPECT_NE(std::string(e.what()).find("OMPI_COMM_WORLD_RANK='one'"), std::string::npos);
  }
}

TEST(CheckLaunch, AgreementPasses) {
  LaunchEnv env;
  env.launcher = "mpirun";
  env.rank = 1;
  env.size = 2;
  EXPECT_NO_THROW(check_launch(env, 1, 2));
}

TEST(CheckLaunch, SrunWithoutMpiPluginIsExplained) {
  LaunchEnv env;
  env.launcher = "srun";
  env.rank = 3;
  env.size = 4;
  try {
    check_launch(env, 0, 1);  // each task became its own one-rank MPI job
    FAIL();
  } catch (const DistError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("started 4 tasks but MPI sees a world of 1"), std::string::npos) << what;
    EXPECT_NE(what.find("--mpi=pmix"), std::string::npos) << what;
  }
}

TEST(CheckLaunch, RankDisagreementIsAnError) {
  LaunchEnv env;
  env.launcher = "mpirun";
  env.rank = 1;
  EXPECT_THROW(check_launch(env, 0, 2), DistError);
}

TEST(Session, WithoutLauncherIsOneRankWithoutMpi) {
  int argc = 1;
  char name[] = "test";
  char* args[] = {name, nullptr};
  char** argv = args;
  const auto session = Session::start(&argc, &argv);
  EXPECT_FALSE(session->uses_mpi());
  EXPECT_EQ(session->world().size, 1);
  EXPECT_EQ(session->world().rank, 0);
  EXPECT_FALSE(session->world().hostname.empty());
}

}  // namespace
}  // namespace muse::comm
