// Collectives on CUDA tensors over NCCL (CUDA builds only).
//
// Each communicator has its own CUDA stream. A collective waits for the work
// already queued on the caller's current stream, runs on the communicator's
// stream, and Work::wait() makes the caller's current stream wait for it, so
// the host never blocks and compute overlaps communication. The NCCL unique
// id is broadcast over MPI, which also carries the fingerprints compared by
// `verify`. A watchdog thread turns a collective that does not finish within
// the timeout (or an asynchronous NCCL error) into an aborted communicator and
// a DistError on the next wait() or call.
#pragma once

#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "comm/communicator.h"

namespace muse::comm {

// True when this process sees at least one CUDA device.
bool nccl_device_available();

class NcclCommunicator final : public Communicator {
 public:
  // Uses GPU `world.local_rank % device_count`.
  NcclCommunicator(const World& world, const CommOptions& options);
  ~NcclCommunicator() override;
  std::string_view backend() const override { return "nccl"; }

 protected:
  std::unique_ptr<Work> launch(Call call) override;

 private:
  friend class NcclWork;

  // The events bracketing one collective on the communicator's stream.
  struct Events {
    cudaEvent_t start = nullptr;
    cudaEvent_t done = nullptr;
    ~Events();
  };
  struct Pending {
    std::shared_ptr<Events> events;
    Collective kind;
    std::chrono::steady_clock::time_point launched;
    std::string what;
  };

  void enqueue(const Call& call);
  void watch();
  void fail(const std::string& reason);
  void throw_if_failed() const;

  CommOptions options_;
  int device_ = 0;
  MPI_Comm bootstrap_ = MPI_COMM_NULL;
  ncclComm_t comm_ = nullptr;
  c10::cuda::CUDAStream stream_;
  at::Tensor barrier_scratch_;  // one float on the device, all-reduced by barrier()

  mutable std::mutex mutex_;  // guards pending_ and failure_
  std::deque<Pending> pending_;
  std::string failure_;
  std::atomic<bool> failed_{false};
  std::atomic<bool> stopping_{false};
  std::thread watchdog_;
};

}  // namespace muse::comm
