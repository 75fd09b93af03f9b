#include "comm/self_check.h"

#include <ATen/ATen.h>

#include <chrono>

namespace muse::comm {
namespace {

// Small integers, exact in every checked dtype (bfloat16 included) after
// summing over up to a few hundred ranks.
at::Tensor pattern(int64_t n, int64_t offset, double add, at::ScalarType dtype) {
  return at::arange(offset, offset + n, at::kLong).remainder(7).to(at::kDouble).add(add).to(dtype);
}

}  // namespace

std::vector<SelfCheckRow> run_self_check(Communicator& comm, int64_t n) {
  const int64_t world = comm.size();
  const int64_t r = comm.rank();
  const double ranks_sum = world * (world + 1) / 2.0;  // sum of (q + 1) over ranks q
  std::vector<SelfCheckRow> rows;
  const at::ScalarType dtypes[] = {at::kFloat, at::kDouble, at::kBFloat16, at::kLong};
  int index = 0;

  for (const at::ScalarType dtype : dtypes) {
    const std::string dtype_name = c10::toString(dtype);
    const bool floating = at::isFloatingType(dtype);
    auto check = [&](const std::string& name, const std::function<void(bool)>& run,
                     const at::Tensor& got, const at::Tensor& want) {
      const bool async = index++ % 2 == 1;
      const auto before = comm.stats().total_wire_bytes();
      const auto start = std::chrono::steady_clock::now();
      run(async);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!at::equal(got.to(at::kDouble), want.to(at::kDouble))) {
        throw DistError("self-check: " + name + " on " + dtype_name + " (" +
                        (async ? "asynchronous" : "blocking") + ") gave wrong values on rank " +
                        std::to_string(r));
      }
      rows.push_back({name, dtype_name, comm.stats().total_wire_bytes() - before, seconds});
    };
    auto wait_if = [](std::unique_ptr<Work> work) { work->wait(); };

    const at::Tensor mine = pattern(n, 0, static_cast<double>(r + 1), dtype);
    at::Tensor gathered = at::empty({world * n}, mine.options());
    at::Tensor gathered_want = at::empty_like(gathered);
    for (int64_t q = 0; q < world; ++q) {
      gathered_want.slice(0, q * n, (q + 1) * n)
          .copy_(pattern(n, 0, static_cast<double>(q + 1), dtype));
    }
    check(
        "all_gather",
        [&](bool async) {
          if (async)
            wait_if(comm.all_gather_async(gathered, mine));
          else
            comm.all_gather(gathered, mine);
        },
        gathered, gathered_want);

    const at::Tensor full = pattern(world * n, 0, static_cast<double>(r + 1), dtype);
    at::Tensor part = at::empty({n}, full.options());
    const at::Tensor part_sum =
        pattern(n, r * n, 0, at::kDouble).mul(world).add(ranks_sum).to(dtype);
    check(
        "reduce_scatter(sum)",
        [&](bool async) {
          if (async)
            wait_if(comm.reduce_scatter_async(part, full, ReduceOp::kSum));
          else
            comm.reduce_scatter(part, full, ReduceOp::kSum);
        },
        part, part_sum);

    at::Tensor summed = mine.clone();
    check(
        "all_reduce(sum)",
        [&](bool async) {
          if (async)
            wait_if(comm.all_reduce_async(summed, ReduceOp::kSum));
          else
            comm.all_reduce(summed, ReduceOp::kSum);
        },
        summed, pattern(n, 0, 0, at::kDouble).mul(world).add(ranks_sum).to(dtype));

    at::Tensor maxed = mine.clone();
    check(
        "all_reduce(max)",
        [&](bool async) {
          if (async)
            wait_if(comm.all_reduce_async(maxed, ReduceOp::kMax));
          else
            comm.all_reduce(maxed, ReduceOp::kMax);
        },
        maxed, pattern(n, 0, static_cast<double>(world), dtype));

    if (floating) {
      at::Tensor averaged = mine.clone();
      check(
          "all_reduce(avg)",
          [&](bool async) {
            if (async)
              wait_if(comm.all_reduce_async(averaged, ReduceOp::kAvg));
            else
              comm.all_reduce(averaged, ReduceOp::kAvg);
          },
          averaged, pattern(n, 0, ranks_sum / world, dtype));
    }

    at::Tensor sent = mine.clone();
    check(
        "broadcast",
        [&](bool async) {
          if (async)
            wait_if(comm.broadcast_async(sent, static_cast<int>(world - 1)));
          else
            comm.broadcast(sent, static_cast<int>(world - 1));
        },
        sent, pattern(n, 0, static_cast<double>(world), dtype));
  }
  comm.barrier();
  return rows;
}

}  // namespace muse::comm
