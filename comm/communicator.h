// Collectives on tensors across the ranks of a job.
//
// Legend: N = world size. Shapes are of the flattened, contiguous tensors:
//   all_gather      in (n)      -> out (N*n)   rank r's input lands at out[r*n:(r+1)*n]
//   reduce_scatter  in (N*n)    -> out (n)     out = op over ranks of in[r*n:(r+1)*n]
//   all_reduce      t (n)       -> t (n)       in place
//   broadcast       t (n)       -> t (n)       in place, from `root`
//   barrier
// Every collective comes in an asynchronous form that returns a Work handle
// at once and a blocking form (`async(...)->wait()`). Until wait() returns,
// the tensors must stay alive and must not be read or written.
//
// A communicator is driven by one thread at a time; use one communicator per
// stream of collectives that should progress independently (they may run
// concurrently).
//
// All ranks must call the same collectives in the same order with matching
// shapes and dtypes. With `verify` on, every call first compares a
// fingerprint (sequence number, collective, dtype, shape, op, root) across
// ranks, so a mismatch is a DistError on every rank instead of a hang or
// corrupt data.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "comm/world.h"

namespace muse::comm {

enum class ReduceOp { kSum, kAvg, kMax, kMin };

enum class Collective { kAllGather, kReduceScatter, kAllReduce, kBroadcast, kBarrier };
inline constexpr int kNumCollectives = 5;

std::string_view to_string(ReduceOp op);
std::string_view to_string(Collective c);

// Traffic of one kind of collective on this rank.
struct CollectiveStats {
  int64_t calls = 0;
  int64_t payload_bytes = 0;  // bytes of this rank's input tensors
  // Bytes this rank sends under a bandwidth-optimal ring algorithm (the
  // NCCL-tests "bus bandwidth" convention), whatever algorithm the backend
  // really uses: all-gather and reduce-scatter (N-1)/N of the full buffer,
  // all-reduce 2(N-1)/N, broadcast the buffer once.
  int64_t wire_bytes = 0;
  double seconds = 0;  // time from start to completion of the collectives
};

struct CommStats {
  std::array<CollectiveStats, kNumCollectives> by_collective{};

  const CollectiveStats& operator[](Collective c) const {
    return by_collective[static_cast<int>(c)];
  }
  CollectiveStats& operator[](Collective c) { return by_collective[static_cast<int>(c)]; }
  int64_t total_wire_bytes() const;
};

// A collective in flight. A Work must not outlive the communicator that made it.
class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the collective is complete (CPU backends) or ordered before
  // later work on the current CUDA stream (NCCL). Throws DistError when it
  // failed, the ranks disagreed about it, or it did not finish within the
  // communicator's timeout. Calling it again returns (or throws) at once.
  virtual void wait() = 0;
  // True once wait() would return without blocking.
  virtual bool completed() = 0;
};

struct CommOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  bool verify = true;  // compare fingerprints across ranks before each collective
};

// The interface every backend implements. Public calls check their arguments
// (same device and dtype, contiguous, sizes that fit N) on the calling rank,
// count traffic, then hand the collective to the backend.
class Communicator {
 public:
  // One validated collective, as the backend receives it. For all-gather and
  // reduce-scatter both tensors are set; for the in-place ones out == in.
  struct Call {
    Collective kind;
    at::Tensor out;
    at::Tensor in;
    ReduceOp op = ReduceOp::kSum;
    int root = 0;
    int64_t seq = 0;  // index of this call on this communicator
  };

  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  virtual std::string_view backend() const = 0;
  CommStats stats() const;
  void reset_stats();

  std::unique_ptr<Work> all_gather_async(const at::Tensor& out, const at::Tensor& in);
  std::unique_ptr<Work> reduce_scatter_async(const at::Tensor& out, const at::Tensor& in,
                                             ReduceOp op = ReduceOp::kSum);
  std::unique_ptr<Work> all_reduce_async(const at::Tensor& tensor, ReduceOp op = ReduceOp::kSum);
  std::unique_ptr<Work> broadcast_async(const at::Tensor& tensor, int root);
  std::unique_ptr<Work> barrier_async();

  void all_gather(const at::Tensor& out, const at::Tensor& in) {
    all_gather_async(out, in)->wait();
  }
  void reduce_scatter(const at::Tensor& out, const at::Tensor& in, ReduceOp op = ReduceOp::kSum) {
    reduce_scatter_async(out, in, op)->wait();
  }
  void all_reduce(const at::Tensor& tensor, ReduceOp op = ReduceOp::kSum) {
    all_reduce_async(tensor, op)->wait();
  }
  void broadcast(const at::Tensor& tensor, int root) { broadcast_async(tensor, root)->wait(); }
  void barrier() { barrier_async()->wait(); }

 protected:
  Communicator(int rank, int size) : rank_(rank), size_(size) {}

  virtual std::unique_ptr<Work> launch(Call call) = 0;

  // Adds the time a completed collective took; backends call it from whichever
  // thread finishes the work.
  void record_seconds(Collective kind, double seconds);

 private:
  std::unique_ptr<Work> submit(Call call);

  int rank_;
  int size_;
  int64_t next_seq_ = 0;
  mutable std::mutex stats_mutex_;  // backends record times from their own threads
  CommStats stats_;
};

// What each rank says about a collective before running it; ranks compare
// these to catch mismatched calls.
struct Fingerprint {
  static constexpr int kMaxDims = 8;
  int64_t seq = 0;
  int64_t kind = 0;
  int64_t dtype = 0;
  int64_t op = 0;
  int64_t root = 0;
  int64_t ndim = 0;
  std::array<int64_t, kMaxDims> dims{};
};

Fingerprint fingerprint_of(const Communicator::Call& call);

// "all_reduce #7 float32[4, 8] sum"
std::string describe(const Fingerprint& f);

// Throws DistError naming the ranks that disagree, when `all` (one entry per
// rank) does not describe the same collective everywhere.
void check_fingerprints(const std::vector<Fingerprint>& all);

// A Work that is already complete (or already failed).
class DoneWork final : public Work {
 public:
  DoneWork() = default;
  explicit DoneWork(std::string error) : error_(std::move(error)) {}
  void wait() override;
  bool completed() override { return true; }

 private:
  std::string error_;
};

// The communicator for `world`: backend "auto" (NCCL in CUDA builds when a
// GPU is present, MPI otherwise), "mpi" or "nccl". A world of one rank always
// gets the single-rank communicator, whose collectives are the identity and
// make no MPI calls. Throws DistError when the backend is not available.
std::unique_ptr<Communicator> make_communicator(const Session& session, std::string_view backend,
                                                const CommOptions& options);

// Backends compiled into this build ("mpi", and "nccl" in CUDA builds).
bool has_nccl();

}  // namespace muse::comm
