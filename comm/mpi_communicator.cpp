#include "comm/mpi_communicator.h"

#include <ATen/ATen.h>

#include <climits>

#include "comm/mpi_error.h"

namespace muse::comm {
namespace {

// The MPI type that moves a dtype's bytes unchanged, and that reduces it
// (bfloat16 and float16 have no MPI reduction type: they reduce as float32).
MPI_Datatype mpi_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return MPI_FLOAT;
    case at::kDouble:
      return MPI_DOUBLE;
    case at::kInt:
      return MPI_INT32_T;
    case at::kLong:
      return MPI_INT64_T;
    case at::kByte:
      return MPI_UINT8_T;
    case at::kBFloat16:
    case at::kHalf:
      return MPI_UINT16_T;
    default:
      throw DistError("no MPI type for " + std::string(c10::toString(t)));
  }
}

bool reduces_in_float(at::ScalarType t) {
  return t == at::kBFloat16 || t == at::kHalf;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return MPI_SUM;  // the average divides afterwards
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  return MPI_SUM;
}

int mpi_count(int64_t n) {
  if (n > INT_MAX) {
    throw DistError("a collective of " + std::to_string(n) +
                    " elements exceeds MPI's count limit of 2^31-1: split the tensor");
  }
  return static_cast<int>(n);
}

}  // namespace

// A collective handed to the worker thread.
class MpiWork final : public Work {
 public:
  MpiWork(MpiCommunicator& owner, std::future<double> future, Fingerprint what,
          std::chrono::steady_clock::time_point deadline)
      : owner_(owner), future_(std::move(future)), what_(what), deadline_(deadline) {}

  void wait() override {
    if (finished_) {
      if (!error_.empty()) throw DistError(error_);
      return;
    }
    if (future_.wait_until(deadline_) == std::future_status::timeout) {
      finished_ = true;
      error_ = describe(what_) + " did not complete within " +
               std::to_string(owner_.options_.timeout.count() / 1000.0) + " s on rank " +
               std::to_string(owner_.rank()) +
               ": another rank has probably failed, hangs, or is calling a different collective "
               "(raise dist.collective_timeout_s if it is only slow)";
      owner_.broken_reason_ = error_;
      owner_.broken_ = true;
      throw DistError(error_);
    }
    finished_ = true;
    try {
      owner_.record_seconds(static_cast<Collective>(what_.kind), future_.get());
    } catch (const DistError& e) {
      error_ = e.what();
      throw;
    }
  }

  bool completed() override {
    return finished_ || future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }

 private:
  MpiCommunicator& owner_;
  std::future<double> future_;
  Fingerprint what_;
  std::chrono::steady_clock::time_point deadline_;
  bool finished_ = false;
  std::string error_;
};

MpiCommunicator::MpiCommunicator(const CommOptions& options)
    : Communicator(
          [] {
            int r = 0;
            MPI_Comm_rank(MPI_COMM_WORLD, &r);
            return r;
          }(),
          [] {
            int n = 1;
            MPI_Comm_size(MPI_COMM_WORLD, &n);
            return n;
          }()),
      options_(options),
      state_(std::make_shared<State>()) {
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &state_->comm), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(state_->comm, MPI_ERRORS_RETURN);
  state_->rank = rank();
  state_->size = size();
  state_->verify = options.verify;
  worker_ = std::thread([state = state_] { serve(state); });
}

MpiCommunicator::~MpiCommunicator() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_one();
  if (broken_) {
    worker_.detach();  // stuck in MPI for good; the job is being torn down
    return;
  }
  worker_.join();
  MPI_Comm_free(&state_->comm);
}

std::unique_ptr<Work> MpiCommunicator::launch(Call call) {
  if (broken_) throw DistError("communicator unusable after an earlier failure: " + broken_reason_);
  if (call.in.defined() && !call.in.is_cpu()) {
    throw DistError(std::string(to_string(call.kind)) +
                    ": the mpi backend takes CPU tensors, got " + call.in.device().str() +
                    " (use dist.backend: nccl for CUDA tensors)");
  }
  const Fingerprint what = fingerprint_of(call);
  Task task{std::move(call), {}};
  std::future<double> future = task.done.get_future();
  {
    std::lock_guard lock(state_->mutex);
    state_->queue.push_back(std::move(task));
  }
  state_->wake.notify_one();
  return std::make_unique<MpiWork>(*this, std::move(future), what,
                                   std::chrono::steady_clock::now() + options_.timeout);
}

void MpiCommunicator::serve(const std::shared_ptr<State>& state) {
  for (;;) {
    Task task;
    {
      std::unique_lock lock(state->mutex);
      state->wake.wait(lock, [&] { return state->stopping || !state->queue.empty(); });
      if (state->queue.empty()) return;  // stopping, and nothing left to run
      task = std::move(state->queue.front());
      state->queue.pop_front();
    }
    const auto start = std::chrono::steady_clock::now();
    try {
      run(*state, task.call);
      task.done.set_value(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    } catch (...) {
      task.done.set_exception(std::current_exception());
    }
  }
}

void MpiCommunicator::run(State& state, const Call& call) {
  if (state.verify) {
    const Fingerprint mine = fingerprint_of(call);
    std::vector<Fingerprint> all(state.size);
    check_mpi(
        MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, state.comm),
        "MPI_Allgather (collective fingerprints)");
    check_fingerprints(all);
  }
  if (call.kind == Collective::kBarrier) {
    check_mpi(MPI_Barrier(state.comm), "MPI_Barrier");
    return;
  }
  const at::ScalarType dtype = call.in.scalar_type();
  switch (call.kind) {
    case Collective::kAllGather: {
      const int n = mpi_count(call.in.numel());
      check_mpi(MPI_Allgather(call.in.data_ptr(), n, mpi_type(dtype), call.out.data_ptr(), n,
                              mpi_type(dtype), state.comm),
                "MPI_Allgather");
      return;
    }
    case Collective::kBroadcast:
      check_mpi(MPI_Bcast(call.in.data_ptr(), mpi_count(call.in.numel()), mpi_type(dtype),
                          call.root, state.comm),
                "MPI_Bcast");
      return;
    case Collective::kReduceScatter:
    case Collective::kAllReduce: {
      const bool widen = reduces_in_float(dtype);
      const at::Tensor in = widen ? call.in.to(at::kFloat) : call.in;
      const at::Tensor out = widen ? at::empty(call.out.sizes(), in.options()) : call.out;
      const MPI_Datatype type = mpi_type(in.scalar_type());
      if (call.kind == Collective::kAllReduce) {
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, in.data_ptr(), mpi_count(in.numel()), type,
                                mpi_op(call.op), state.comm),
                  "MPI_Allreduce");
        if (call.op == ReduceOp::kAvg) in.div_(state.size);
        if (widen) call.out.copy_(in);
      } else {
        check_mpi(MPI_Reduce_scatter_block(in.data_ptr(), out.data_ptr(), mpi_count(out.numel()),
                                           type, mpi_op(call.op), state.comm),
                  "MPI_Reduce_scatter_block");
        if (call.op == ReduceOp::kAvg) out.div_(state.size);
        if (widen) call.out.copy_(out);
      }
      return;
    }
    case Collective::kBarrier:
      return;
  }
}

}  // namespace muse::comm
