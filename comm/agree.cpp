#include "comm/agree.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include "config/schema.h"

namespace muse::comm {

void run_agreed(Communicator& comm, const std::function<void()>& work) {
  std::exception_ptr failure;
  bool config_error = false;
  try {
    work();
  } catch (const DistError&) {
    throw;  // the communicator itself failed: no agreement is possible
  } catch (const config::ConfigError&) {
    failure = std::current_exception();
    config_error = true;
  } catch (...) {
    failure = std::current_exception();
  }
  // The lowest failing rank reports; ranks that failed the same way (they
  // usually read the same files) stay quiet instead of repeating it. One
  // minimum carries both: 2 * rank + (0 for a config error, else 1).
  const int64_t mine = failure ? 2 * comm.rank() + (config_error ? 0 : 1) : 2 * comm.size();
  const at::Tensor first = at::full({1}, mine, at::kLong);
  comm.all_reduce(first, ReduceOp::kMin);
  const int64_t reporter = first.item<int64_t>() / 2;
  if (reporter == comm.rank()) std::rethrow_exception(failure);
  if (reporter < comm.size()) {
    throw PeerFailure("rank " + std::to_string(reporter) + " failed",
                      first.item<int64_t>() % 2 == 0);
  }
}

std::vector<double> sum_over_ranks(Communicator& comm, std::vector<double> values) {
  const at::Tensor t = at::tensor(values, at::kDouble);
  comm.all_reduce(t);
  return {t.data_ptr<double>(), t.data_ptr<double>() + t.numel()};
}

std::vector<std::string> all_gather_bytes(Communicator& comm, const std::string& mine) {
  const int n = comm.size();
  const at::Tensor sizes = at::empty({n}, at::kLong);
  comm.all_gather(sizes, at::full({1}, static_cast<int64_t>(mine.size()), at::kLong));
  const int64_t widest = std::max<int64_t>(1, sizes.max().item<int64_t>());
  const at::Tensor padded = at::zeros({widest}, at::kByte);
  std::memcpy(padded.data_ptr<uint8_t>(), mine.data(), mine.size());
  const at::Tensor all = at::empty({n * widest}, at::kByte);
  comm.all_gather(all, padded);
  std::vector<std::string> out;
  for (int r = 0; r < n; ++r) {
    const auto* begin = reinterpret_cast<const char*>(all.data_ptr<uint8_t>()) + r * widest;
    out.emplace_back(begin, static_cast<size_t>(sizes[r].item<int64_t>()));
  }
  return out;
}

}  // namespace muse::comm
