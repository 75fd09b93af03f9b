// The single-rank communicator (identity collectives, no MPI) and the
// argument checks every backend shares.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "comm/communicator.h"
#include "comm/solo_communicator.h"

namespace muse::comm {
namespace {

TEST(Solo, CollectivesAreTheIdentity) {
  SoloCommunicator comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.size(), 1);
  const at::Tensor x = at::arange(6, at::kFloat);
  const at::Tensor out = at::zeros({6}, at::kFloat);
  comm.all_gather(out, x);
  EXPECT_TRUE(at::equal(out, x));
  out.zero_();
  comm.reduce_scatter(out, x, ReduceOp::kAvg);
  EXPECT_TRUE(at::equal(out, x));
  const at::Tensor y = x.clone();
  comm.all_reduce(y, ReduceOp::kSum);
  comm.broadcast(y, 0);
  EXPECT_TRUE(at::equal(y, x));
  auto work = comm.all_reduce_async(y);
  EXPECT_TRUE(work->completed());
  work->wait();
  comm.barrier();
}

TEST(Solo, CountsCallsButNoWireBytes) {
  SoloCommunicator comm;
  const at::Tensor x = at::ones({8}, at::kDouble);
  comm.all_reduce(x);
  comm.all_reduce(x);
  const CommStats s = comm.stats();
  EXPECT_EQ(s[Collective::kAllReduce].calls, 2);
  EXPECT_EQ(s[Collective::kAllReduce].payload_bytes, 128);
  EXPECT_EQ(s.total_wire_bytes(), 0);
}

void expect_error(const std::function<void()>& call, const std::string& fragment) {
  try {
    call();
    FAIL() << "no error; expected one containing '" << fragment << "'";
  } catch (const DistError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(ArgumentChecks, RejectBadTensorsBeforeCommunicating) {
  SoloCommunicator comm;
  const at::Tensor x = at::ones({4, 4}, at::kFloat);
  expect_error([&] { comm.all_reduce(x.t().slice(0, 0, 2)); }, "not contiguous");
  expect_error([&] { comm.all_reduce(at::Tensor()); }, "undefined");
  expect_error([&] { comm.all_reduce(at::ones({2}, at::kBool)); }, "not supported");
  expect_error([&] { comm.all_reduce(at::ones({2}, at::kLong), ReduceOp::kAvg); },
               "average needs a floating-point tensor");
  expect_error([&] { comm.all_gather(at::ones({3}, at::kFloat), x); }, "must hold");
  expect_error([&] { comm.all_gather(at::ones({16}, at::kDouble), x); }, "differ in dtype");
  expect_error([&] { comm.broadcast(x, 1); }, "root 1 is not a rank");
  EXPECT_EQ(comm.stats()[Collective::kAllReduce].calls, 0);  // nothing was submitted
}

Fingerprint fp(int64_t seq, Collective kind, at::ScalarType dtype, std::vector<int64_t> dims) {
  Fingerprint f;
  f.seq = seq;
  f.kind = static_cast<int64_t>(kind);
  f.dtype = static_cast<int64_t>(dtype);
  f.ndim = static_cast<int64_t>(dims.size());
  for (size_t i = 0; i < dims.size(); ++i)
    f.dims[i] = dims[i];
  return f;
}

TEST(Fingerprints, DescribeNamesCollectiveShapeAndOp) {
  EXPECT_EQ(describe(fp(7, Collective::kAllReduce, at::kFloat, {4, 8})),
            "all_reduce #7 Float[4, 8] sum");
  EXPECT_EQ(describe(fp(0, Collective::kBarrier, at::kFloat, {})), "barrier #0");
}

TEST(Fingerprints, MismatchNamesBothRanks) {
  const auto a = fp(3, Collective::kAllGather, at::kFloat, {16});
  auto b = a;
  EXPECT_NO_THROW(check_fingerprints({a, a, a}));
  b.dims[0] = 17;
  try {
    check_fingerprints({a, a, b});
    FAIL();
  } catch (const DistError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("rank 0 calls all_gather #3 Float[16]"), std::string::npos) << what;
    EXPECT_NE(what.find("rank 2 calls all_gather #3 Float[17]"), std::string::npos) << what;
  }
  b = a;
  b.seq = 4;  // one rank skipped a collective
  EXPECT_THROW(check_fingerprints({a, b}), DistError);
}

TEST(MakeCommunicator, OneRankGetsTheSoloBackendAndUnknownBackendsFail) {
  int argc = 1;
  char name[] = "test";
  char* args[] = {name, nullptr};
  char** argv = args;
  const auto session = Session::start(&argc, &argv);
  EXPECT_EQ(make_communicator(*session, "auto", {})->backend(), "solo");
  EXPECT_EQ(make_communicator(*session, "mpi", {})->backend(), "solo");
  EXPECT_THROW(make_communicator(*session, "gloo", {}), DistError);
  if (!has_nccl()) {
    EXPECT_THROW(make_communicator(*session, "nccl", {}), DistError);
  }
}

}  // namespace
}  // namespace muse::comm
