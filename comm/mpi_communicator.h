// Collectives on CPU tensors over MPI.
//
// Each communicator owns a duplicate of MPI_COMM_WORLD and one worker thread
// that runs its collectives in submission order with blocking MPI calls, so
// asynchronous collectives progress while the caller computes (Open MPI's
// non-blocking collectives only progress inside MPI calls). bfloat16 and
// float16 reductions are computed in float32 and rounded once.
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "comm/communicator.h"

namespace muse::comm {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const CommOptions& options);
  ~MpiCommunicator() override;
  std::string_view backend() const override { return "mpi"; }

 protected:
  std::unique_ptr<Work> launch(Call call) override;

 private:
  friend class MpiWork;

  struct Task {
    Call call;
    std::promise<double> done;  // seconds the collective took, or its error
  };
  // Everything the worker thread touches. Shared with the thread so that a
  // communicator whose worker is stuck in MPI (after a timeout) can be
  // destroyed by detaching the thread.
  struct State {
    MPI_Comm comm = MPI_COMM_NULL;
    int rank = 0;
    int size = 1;
    bool verify = true;
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<Task> queue;
    bool stopping = false;
  };

  static void serve(const std::shared_ptr<State>& state);
  static void run(State& state, const Call& call);

  CommOptions options_;
  std::shared_ptr<State> state_;
  std::thread worker_;
  std::atomic<bool> broken_{false};  // a collective timed out; the worker may never return
  std::string broken_reason_;
};

}  // namespace muse::comm
