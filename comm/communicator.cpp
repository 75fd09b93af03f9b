#include "comm/communicator.h"

#include <ATen/ATen.h>

#include <sstream>

#include "comm/mpi_communicator.h"
#include "comm/solo_communicator.h"
#ifdef MUSE_WITH_NCCL
#include "comm/nccl_communicator.h"
#endif

namespace muse::comm {
namespace {

bool is_supported(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
    case at::kDouble:
    case at::kBFloat16:
    case at::kHalf:
    case at::kInt:
    case at::kLong:
    case at::kByte:
      return true;
    default:
      return false;
  }
}

std::string shape_of(const at::Tensor& t) {
  std::ostringstream s;
  s << c10::toString(t.scalar_type()) << t.sizes() << " on " << t.device();
  return s.str();
}

void check_tensor(std::string_view what, const at::Tensor& t) {
  const std::string name(what);
  if (!t.defined()) throw DistError(name + ": tensor is undefined");
  if (!is_supported(t.scalar_type())) {
    throw DistError(name + ": dtype " + std::string(c10::toString(t.scalar_type())) +
                    " is not supported (float32, float64, bfloat16, float16, int32, int64, uint8)");
  }
  if (!t.is_contiguous()) throw DistError(name + ": tensor " + shape_of(t) + " is not contiguous");
}

void check_pair(std::string_view what, const at::Tensor& out, const at::Tensor& in,
                int64_t out_factor, int64_t in_factor) {
  check_tensor(what, out);
  check_tensor(what, in);
  const std::string name(what);
  if (out.scalar_type() != in.scalar_type() || out.device() != in.device()) {
    throw DistError(name + ": output " + shape_of(out) + " and input " + shape_of(in) +
                    " differ in dtype or device");
  }
  if (out.numel() * in_factor != in.numel() * out_factor) {
    throw DistError(name + ": output " + shape_of(out) + " must hold " +
                    std::to_string(out_factor) + "/" + std::to_string(in_factor) +
                    " times the elements of input " + shape_of(in));
  }
}

void check_op(std::string_view what, const at::Tensor& t, ReduceOp op) {
  if (op == ReduceOp::kAvg && !at::isFloatingType(t.scalar_type())) {
    throw DistError(std::string(what) + ": average needs a floating-point tensor, got " +
                    shape_of(t));
  }
}

}  // namespace

std::string_view to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "?";
}

std::string_view to_string(Collective c) {
  switch (c) {
    case Collective::kAllGather:
      return "all_gather";
    case Collective::kReduceScatter:
      return "reduce_scatter";
    case Collective::kAllReduce:
      return "all_reduce";
    case Collective::kBroadcast:
      return "broadcast";
    case Collective::kBarrier:
      return "barrier";
  }
  return "?";
}

int64_t CommStats::total_wire_bytes() const {
  int64_t total = 0;
  for (const auto& s : by_collective)
    total += s.wire_bytes;
  return total;
}

CommStats Communicator::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

void Communicator::reset_stats() {
  std::lock_guard lock(stats_mutex_);
  stats_ = {};
}

void Communicator::record_seconds(Collective kind, double seconds) {
  std::lock_guard lock(stats_mutex_);
  stats_[kind].seconds += seconds;
}

std::unique_ptr<Work> Communicator::all_gather_async(const at::Tensor& out, const at::Tensor& in) {
  check_pair("all_gather", out, in, size_, 1);
  return submit({Collective::kAllGather, out, in});
}

std::unique_ptr<Work> Communicator::reduce_scatter_async(const at::Tensor& out,
                                                         const at::Tensor& in, ReduceOp op) {
  check_pair("reduce_scatter", out, in, 1, size_);
  check_op("reduce_scatter", in, op);
  return submit({Collective::kReduceScatter, out, in, op});
}

std::unique_ptr<Work> Communicator::all_reduce_async(const at::Tensor& tensor, ReduceOp op) {
  check_tensor("all_reduce", tensor);
  check_op("all_reduce", tensor, op);
  return submit({Collective::kAllReduce, tensor, tensor, op});
}

std::unique_ptr<Work> Communicator::broadcast_async(const at::Tensor& tensor, int root) {
  check_tensor("broadcast", tensor);
  if (root < 0 || root >= size_) {
    throw DistError("broadcast: root " + std::to_string(root) + " is not a rank of a world of " +
                    std::to_string(size_));
  }
  return submit({Collective::kBroadcast, tensor, tensor, ReduceOp::kSum, root});
}

std::unique_ptr<Work> Communicator::barrier_async() {
  return submit({Collective::kBarrier, at::Tensor(), at::Tensor()});
}

std::unique_ptr<Work> Communicator::submit(Call call) {
  call.seq = next_seq_++;
  const int64_t n = size_;
  const int64_t in_bytes = call.in.defined() ? call.in.nbytes() : 0;
  int64_t wire = 0;
  switch (call.kind) {
    case Collective::kAllGather:
      wire = in_bytes * (n - 1);
      break;
    case Collective::kReduceScatter:
      wire = in_bytes * (n - 1) / n;
      break;
    case Collective::kAllReduce:
      wire = 2 * in_bytes * (n - 1) / n;
      break;
    case Collective::kBroadcast:
      wire = n > 1 ? in_bytes : 0;
      break;
    case Collective::kBarrier:
      break;
  }
  {
    std::lock_guard lock(stats_mutex_);
    auto& s = stats_[call.kind];
    s.calls += 1;
    s.payload_bytes += in_bytes;
    s.wire_bytes += wire;
  }
  return launch(std::move(call));
}

Fingerprint fingerprint_of(const Communicator::Call& call) {
  Fingerprint f;
  f.seq = call.seq;
  f.kind = static_cast<int64_t>(call.kind);
  f.op = static_cast<int64_t>(call.op);
  f.root = call.root;
  if (call.in.defined()) {
    f.dtype = static_cast<int64_t>(call.in.scalar_type());
    f.ndim = call.in.dim();
    for (int64_t d = 0; d < f.ndim && d < Fingerprint::kMaxDims; ++d)
      f.dims[d] = call.in.size(d);
  }
  return f;
}

std::string describe(const Fingerprint& f) {
  std::ostringstream s;
  const auto kind = static_cast<Collective>(f.kind);
  s << to_string(kind) << " #" << f.seq;
  if (kind == Collective::kBarrier) return s.str();
  s << " " << c10::toString(static_cast<at::ScalarType>(f.dtype)) << "[";
  for (int64_t d = 0; d < f.ndim && d < Fingerprint::kMaxDims; ++d)
    s << (d ? ", " : "") << f.dims[d];
  if (f.ndim > Fingerprint::kMaxDims) s << ", ...";
  s << "]";
  if (kind == Collective::kAllReduce || kind == Collective::kReduceScatter) {
    s << " " << to_string(static_cast<ReduceOp>(f.op));
  }
  if (kind == Collective::kBroadcast) s << " from rank " << f.root;
  return s.str();
}

void check_fingerprints(const std::vector<Fingerprint>& all) {
  auto same = [](const Fingerprint& a, const Fingerprint& b) {
    return a.seq == b.seq && a.kind == b.kind && a.dtype == b.dtype && a.op == b.op &&
           a.root == b.root && a.ndim == b.ndim && a.dims == b.dims;
  };
  for (size_t r = 1; r < all.size(); ++r) {
    if (same(all[r], all[0])) continue;
    throw DistError("ranks disagree about a collective: rank 0 calls " + describe(all[0]) +
                    " but rank " + std::to_string(r) + " calls " + describe(all[r]));
  }
}

void DoneWork::wait() {
  if (!error_.empty()) throw DistError(error_);
}

bool has_nccl() {
#ifdef MUSE_WITH_NCCL
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_communicator(const Session& session, std::string_view backend,
                                                const CommOptions& options) {
  const World& w = session.world();
  if (backend != "auto" && backend != "mpi" && backend != "nccl") {
    throw DistError("unknown communicator backend '" + std::string(backend) +
                    "' (expected auto, mpi or nccl)");
  }
  if (backend == "nccl" && !has_nccl()) {
    throw DistError(
        "backend 'nccl' is not in this build: configure with -DMUSE_WITH_CUDA=ON on a machine "
        "with the CUDA toolkit and NCCL");
  }
  if (w.size == 1) return std::make_unique<SoloCommunicator>();
  if (!session.uses_mpi()) throw DistError("a world of several ranks needs MPI");
#ifdef MUSE_WITH_NCCL
  if (backend == "nccl" || (backend == "auto" && nccl_device_available())) {
    return std::make_unique<NcclCommunicator>(w, options);
  }
#endif
  return std::make_unique<MpiCommunicator>(options);
}

}  // namespace muse::comm
