// Collective latency and bandwidth of muse-train's MPI communicator, and how
// much of an asynchronous all-reduce hides behind computation. Run under
// mpirun; prints one JSON object per measurement on rank 0 (bench/comm/run.sh
// puts them side by side with torch.distributed's gloo backend).
//
//   mpirun -np 2 comm_bench [--reps 20] [--max-mib 64]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace {

using Clock = std::chrono::steady_clock;
using muse::comm::Communicator;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds of `reps` runs of `op`, with a barrier before each so ranks
// start together.
template <class Op>
double time_median(Communicator& comm, int reps, Op op) {
  op();  // warm-up
  std::vector<double> seconds;
  for (int i = 0; i < reps; ++i) {
    comm.barrier();
    const auto start = Clock::now();
    op();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  return median(seconds);
}

void report(int rank, const char* name, bool verify, int64_t bytes, double seconds,
            double bus_factor) {
  if (rank != 0) return;
  std::printf(
      "{\"impl\": \"muse\", \"collective\": \"%s\", \"verify\": %s, \"bytes\": %lld, "
      "\"seconds\": %.9g, \"busbw_gbps\": %.6g}\n",
      name, verify ? "true" : "false", static_cast<long long>(bytes), seconds,
      bytes * bus_factor / seconds / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 20;
  int64_t max_mib = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--max-mib")) max_mib = std::atoll(argv[i + 1]);
  }
  const auto session = muse::comm::Session::start(&argc, &argv);
  at::set_num_threads(1);  // one core per rank, as the ranks share the machine
  for (const bool verify : {true, false}) {
    muse::comm::CommOptions options;
    options.verify = verify;
    auto comm = muse::comm::make_communicator(*session, "mpi", options);
    const int64_t n_ranks = comm->size();
    const double ring = static_cast<double>(n_ranks - 1) / n_ranks;
    for (int64_t bytes = 4096; bytes <= max_mib << 20; bytes *= 16) {
      const int64_t n = bytes / 4;
      const at::Tensor t = at::ones({n}, at::kFloat);
      const at::Tensor shard = at::ones({n / n_ranks}, at::kFloat);
      report(comm->rank(), "all_reduce", verify, bytes,
             time_median(*comm, reps, [&] { comm->all_reduce(t); }), 2 * ring);
      report(comm->rank(), "all_gather", verify, bytes,
             time_median(*comm, reps, [&] { comm->all_gather(t, shard); }), ring);
      report(comm->rank(), "reduce_scatter", verify, bytes,
             time_median(*comm, reps, [&] { comm->reduce_scatter(shard, t); }), ring);
    }
  }

  // Overlap: a 16 MiB all-reduce started before a matmul, waited after it.
  auto comm = muse::comm::make_communicator(*session, "mpi", {});
  const at::Tensor grads = at::ones({4 << 20}, at::kFloat);
  const at::Tensor a = at::randn({384, 384});
  auto compute = [&] {
    for (int i = 0; i < 20; ++i)
      (void)at::mm(a, a);
  };
  const double t_comm = time_median(*comm, reps, [&] { comm->all_reduce(grads); });
  const double t_compute = time_median(*comm, reps, compute);
  const double t_both = time_median(*comm, reps, [&] {
    auto work = comm->all_reduce_async(grads);
    compute();
    work->wait();
  });
  if (comm->rank() == 0) {
    std::printf(
        "{\"impl\": \"muse\", \"overlap\": true, \"comm_s\": %.6g, \"compute_s\": %.6g, "
        "\"both_s\": %.6g, \"hidden_fraction\": %.4g}\n",
        t_comm, t_compute, t_both,
        std::clamp((t_comm + t_compute - t_both) / std::min(t_comm, t_compute), 0.0, 1.0));
  }
  return 0;
}
