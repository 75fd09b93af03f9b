#include "comm/nccl_communicator.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>

#include "comm/mpi_error.h"
#include "telemetry/nvtx.h"

namespace muse::comm {
namespace {

void check_cuda(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw DistError(std::string(what) + " failed: " + cudaGetErrorString(rc));
}

void check_nccl(ncclResult_t rc, const char* what) {
  if (rc != ncclSuccess && rc != ncclInProgress) {
    throw DistError(std::string(what) + " failed: " + ncclGetErrorString(rc));
  }
}

ncclDataType_t nccl_type(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kHalf:
      return ncclFloat16;
    case at::kInt:
      return ncclInt32;
    case at::kLong:
      return ncclInt64;
    case at::kByte:
      return ncclUint8;
    default:
      throw DistError("no NCCL type for " + std::string(c10::toString(t)));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

// The NVTX range of a collective's enqueue: a constant name per kind, so that
// naming it costs nothing; the range's payload carries the size.
const char* range_name(Collective c) {
  switch (c) {
    case Collective::kAllGather:
      return "nccl all_gather";
    case Collective::kReduceScatter:
      return "nccl reduce_scatter";
    case Collective::kAllReduce:
      return "nccl all_reduce";
    case Collective::kBroadcast:
      return "nccl broadcast";
    case Collective::kBarrier:
      return "nccl barrier";
  }
  return "nccl";
}

// Bytes of the collective's full buffer: the all-gather's output, the
// reduce-scatter's input, the in-place tensor otherwise.
int64_t buffer_bytes(const Communicator::Call& call) {
  const at::Tensor& full = call.kind == Collective::kAllGather ? call.out : call.in;
  return full.defined() ? static_cast<int64_t>(full.nbytes()) : 0;
}

}  // namespace

bool nccl_device_available() {
  return c10::cuda::device_count() > 0;
}

namespace {

int pick_device(const World& world) {
  const int count = c10::cuda::device_count();
  if (count == 0) throw DistError("backend 'nccl' needs a CUDA device, and this process sees none");
  return world.local_rank % count;
}

}  // namespace

// A collective queued on the communicator's stream.
class NcclWork final : public Work {
 public:
  // `host_blocking`: wait() also blocks the host until completion (barrier).
  NcclWork(NcclCommunicator& owner, std::shared_ptr<NcclCommunicator::Events> events,
           bool host_blocking)
      : owner_(owner), events_(std::move(events)), host_blocking_(host_blocking) {}

  void wait() override {
    owner_.throw_if_failed();
    // Poll rather than cudaEventSynchronize so that a watchdog abort ends the wait.
    while (host_blocking_ && !completed())
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    const c10::cuda::CUDAGuard guard(owner_.device_);
    check_cuda(cudaStreamWaitEvent(c10::cuda::getCurrentCUDAStream(owner_.device_).stream(),
                                   events_->done, 0),
               "cudaStreamWaitEvent");
  }

  bool completed() override {
    owner_.throw_if_failed();
    return cudaEventQuery(events_->done) == cudaSuccess;
  }

 private:
  NcclCommunicator& owner_;
  std::shared_ptr<NcclCommunicator::Events> events_;
  bool host_blocking_;
};

NcclCommunicator::Events::~Events() {
  if (start) cudaEventDestroy(start);
  if (done) cudaEventDestroy(done);
}

NcclCommunicator::NcclCommunicator(const World& world, const CommOptions& options)
    : Communicator(world.rank, world.size),
      options_(options),
      device_(pick_device(world)),
      stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device_)) {
  const c10::cuda::CUDAGuard guard(device_);
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &bootstrap_), "MPI_Comm_dup");
  ncclUniqueId id;
  if (rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  check_mpi(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, bootstrap_), "MPI_Bcast (NCCL id)");
  check_nccl(ncclCommInitRank(&comm_, size(), id, rank()), "ncclCommInitRank");
  barrier_scratch_ =
      at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(at::kCUDA, device_));
  watchdog_ = std::thread([this] { watch(); });
}

NcclCommunicator::~NcclCommunicator() {
  stopping_ = true;
  watchdog_.join();
  if (!failed_) {
    cudaStreamSynchronize(stream_.stream());
    ncclCommDestroy(comm_);
  }
  MPI_Comm_free(&bootstrap_);
}

void NcclCommunicator::throw_if_failed() const {
  if (!failed_) return;
  std::lock_guard lock(mutex_);
  throw DistError(failure_);
}

void NcclCommunicator::fail(const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    if (failed_) return;
    failure_ = reason;
  }
  // Aborting releases every kernel of this communicator that is stuck waiting
  // for a peer; the communicator is unusable afterwards.
  ncclCommAbort(comm_);
  failed_ = true;
}

void NcclCommunicator::watch() {
  using namespace std::chrono_literals;
  while (!stopping_) {
    std::this_thread::sleep_for(50ms);
    if (failed_) continue;
    ncclResult_t async_error = ncclSuccess;
    ncclCommGetAsyncError(comm_, &async_error);
    if (async_error != ncclSuccess && async_error != ncclInProgress) {
      fail(std::string("NCCL reported an asynchronous error: ") + ncclGetErrorString(async_error));
      continue;
    }
    std::unique_lock lock(mutex_);
    while (!pending_.empty()) {
      Pending& p = pending_.front();
      if (cudaEventQuery(p.events->done) == cudaSuccess) {
        float ms = 0;
        cudaEventElapsedTime(&ms, p.events->start, p.events->done);
        record_seconds(p.kind, ms / 1e3);
        pending_.pop_front();
        continue;
      }
      if (std::chrono::steady_clock::now() - p.launched > options_.timeout) {
        const std::string reason =
            p.what + " did not complete within " +
            std::to_string(options_.timeout.count() / 1000.0) + " s on rank " +
            std::to_string(rank()) +
            ": another rank has probably failed, hangs, or is calling a different collective "
            "(raise dist.collective_timeout_s if it is only slow)";
        lock.unlock();
        fail(reason);
        lock.lock();
      }
      break;
    }
  }
}

std::unique_ptr<Work> NcclCommunicator::launch(Call call) {
  throw_if_failed();
  if (call.in.defined() && (!call.in.is_cuda() || call.in.get_device() != device_)) {
    throw DistError(std::string(to_string(call.kind)) +
                    ": the nccl backend takes tensors on cuda:" + std::to_string(device_));
  }
  const Fingerprint mine = fingerprint_of(call);
  if (options_.verify) {
    const telemetry::NvtxRange range("nccl verify");
    std::vector<Fingerprint> all(size());
    check_mpi(
        MPI_Allgather(&mine, sizeof mine, MPI_BYTE, all.data(), sizeof mine, MPI_BYTE, bootstrap_),
        "MPI_Allgather (collective fingerprints)");
    check_fingerprints(all);
  }
  // Everything that queues the collective: the events, the stream waits and
  // the NCCL call (the GPU work itself shows on the communicator's stream).
  const telemetry::NvtxRange range(range_name(call.kind), buffer_bytes(call));
  const c10::cuda::CUDAGuard guard(device_);
  auto events = std::make_shared<Events>();
  check_cuda(cudaEventCreate(&events->start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&events->done), "cudaEventCreate");
  // Run after what the caller queued so far on its stream.
  cudaEvent_t ready = nullptr;
  check_cuda(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
  check_cuda(cudaEventRecord(ready, c10::cuda::getCurrentCUDAStream(device_).stream()),
             "cudaEventRecord");
  check_cuda(cudaStreamWaitEvent(stream_.stream(), ready, 0), "cudaStreamWaitEvent");
  cudaEventDestroy(ready);
  check_cuda(cudaEventRecord(events->start, stream_.stream()), "cudaEventRecord");
  enqueue(call);
  check_cuda(cudaEventRecord(events->done, stream_.stream()), "cudaEventRecord");
  // The caching allocator must not hand these buffers out again before the
  // communicator's stream is done with them.
  for (const at::Tensor& t : {call.in, call.out}) {
    if (t.defined()) c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), stream_);
  }
  {
    std::lock_guard lock(mutex_);
    pending_.push_back({events, call.kind, std::chrono::steady_clock::now(), describe(mine)});
  }
  return std::make_unique<NcclWork>(*this, std::move(events), call.kind == Collective::kBarrier);
}

void NcclCommunicator::enqueue(const Call& call) {
  const cudaStream_t s = stream_.stream();
  switch (call.kind) {
    case Collective::kAllGather:
      check_nccl(ncclAllGather(call.in.data_ptr(), call.out.data_ptr(), call.in.numel(),
                               nccl_type(call.in.scalar_type()), comm_, s),
                 "ncclAllGather");
      return;
    case Collective::kReduceScatter:
      check_nccl(ncclReduceScatter(call.in.data_ptr(), call.out.data_ptr(), call.out.numel(),
                                   nccl_type(call.in.scalar_type()), nccl_op(call.op), comm_, s),
                 "ncclReduceScatter");
      return;
    case Collective::kAllReduce:
      check_nccl(ncclAllReduce(call.in.data_ptr(), call.in.data_ptr(), call.in.numel(),
                               nccl_type(call.in.scalar_type()), nccl_op(call.op), comm_, s),
                 "ncclAllReduce");
      return;
    case Collective::kBroadcast:
      check_nccl(ncclBroadcast(call.in.data_ptr(), call.in.data_ptr(), call.in.numel(),
                               nccl_type(call.in.scalar_type()), call.root, comm_, s),
                 "ncclBroadcast");
      return;
    case Collective::kBarrier:
      check_nccl(ncclAllReduce(barrier_scratch_.data_ptr(), barrier_scratch_.data_ptr(), 1,
                               ncclFloat32, ncclSum, comm_, s),
                 "ncclAllReduce (barrier)");
      return;
  }
}

}  // namespace muse::comm
