#include "dist/agree.h"

#include <ATen/ATen.h>

#include <exception>

namespace muse::dist {

void run_agreed(Communicator& comm, const std::function<void()>& work) {
  std::exception_ptr failure;
  try {
    work();
  } catch (const DistError&) {
    throw;  // the communicator itself failed: no agreement is possible
  } catch (...) {
    failure = std::current_exception();
  }
  // The lowest failing rank reports; ranks that failed the same way (they
  // usually read the same files) stay quiet instead of repeating it.
  const at::Tensor first = at::full({1}, failure ? comm.rank() : comm.size(), at::kLong);
  comm.all_reduce(first, ReduceOp::kMin);
  const int64_t reporter = first.item<int64_t>();
  if (reporter == comm.rank()) std::rethrow_exception(failure);
  if (reporter < comm.size()) throw PeerFailure("rank " + std::to_string(reporter) + " failed");
}

}  // namespace muse::dist
