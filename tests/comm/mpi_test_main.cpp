// main() of the multi-rank GoogleTest binaries: starts the distributed
// session, runs every test on every rank, prints the normal report on rank 0
// and only failures (tagged with the rank) elsewhere.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "tests/comm/mpi_test_env.h"

namespace muse::testing {
namespace {

std::unique_ptr<comm::Session> g_session;

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.message());
  }

 private:
  int rank_;
};

}  // namespace

const comm::Session& session() {
  return *g_session;
}

std::unique_ptr<comm::Communicator> make_test_communicator(bool verify) {
  comm::CommOptions options;
  options.timeout = std::chrono::seconds(60);
  options.verify = verify;
  return comm::make_communicator(*g_session, "mpi", options);
}

at::Tensor rank_data(int rank, int64_t n, at::ScalarType dtype, int salt) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 * rank + salt + 1);
  const at::Tensor values = at::randn({n}, gen, at::kDouble);
  if (at::isFloatingType(dtype)) return values.to(dtype);
  return values.mul(1000).round().to(dtype);
}

}  // namespace muse::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  muse::testing::g_session = muse::comm::Session::start(&argc, &argv);
  const int rank = muse::testing::g_session->world().rank;
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new muse::testing::FailurePrinter(rank));
  }
  const int result = RUN_ALL_TESTS();
  muse::testing::g_session.reset();
  return result;
}
