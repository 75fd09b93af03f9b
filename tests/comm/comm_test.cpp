// Every collective of the MPI communicator, blocking and asynchronous, for
// each dtype, against values computed locally from every rank's
// (deterministic) input. Runs under mpirun with 2 and 4 ranks.
#include <gtest/gtest.h>

#include <string>

#include "comm/agree.h"
#include "comm/communicator.h"
#include "comm/self_check.h"
#include "config/schema.h"
#include "tests/comm/mpi_test_env.h"

namespace muse::comm {
namespace {

using muse::testing::rank_data;
using muse::testing::session;

constexpr int64_t kN = 37;  // odd, so nothing lines up by accident

struct Case {
  at::ScalarType dtype;
  bool async;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(c10::toString(info.param.dtype)) + (info.param.async ? "_async" : "_blocking");
}

class CommTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    comm_ = muse::testing::make_test_communicator();
    rank_ = comm_->rank();
    size_ = comm_->size();
  }

  // Runs `work` asynchronously (then waits) or blocking, as the case says.
  void finish(std::unique_ptr<Work> work) {
    ASSERT_TRUE(work);
    work->wait();
    EXPECT_TRUE(work->completed());
  }

  // Element-wise reduction over every rank's input, in float64 then cast:
  // what a correct reduction gives up to the rounding of the summation order.
  at::Tensor reduce_all(ReduceOp op, int64_t n, at::ScalarType dtype, int salt) const {
    at::Tensor acc;
    for (int r = 0; r < size_; ++r) {
      const at::Tensor x = rank_data(r, n, dtype, salt).to(at::kDouble);
      if (!acc.defined()) {
        acc = x.clone();
      } else if (op == ReduceOp::kMax) {
        acc = at::maximum(acc, x);
      } else if (op == ReduceOp::kMin) {
        acc = at::minimum(acc, x);
      } else {
        acc += x;
      }
    }
    if (op == ReduceOp::kAvg) acc /= size_;
    return acc.to(dtype);
  }

  static void expect_close(const at::Tensor& got, const at::Tensor& want) {
    ASSERT_EQ(got.scalar_type(), want.scalar_type());
    ASSERT_EQ(got.sizes(), want.sizes());
    if (!at::isFloatingType(got.scalar_type())) {
      EXPECT_TRUE(at::equal(got, want)) << "got " << got << "\nwant " << want;
      return;
    }
    // One rounding step of the dtype: reductions may sum in another order.
    const double tol = got.scalar_type() == at::kBFloat16 ? 1e-2
                       : got.scalar_type() == at::kFloat  ? 1e-6
                                                          : 1e-12;
    EXPECT_TRUE(at::allclose(got.to(at::kDouble), want.to(at::kDouble), tol, tol))
        << "max error " << (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>();
  }

  std::unique_ptr<Communicator> comm_;
  int rank_ = 0;
  int size_ = 1;
};

TEST_P(CommTest, AllGather) {
  const auto [dtype, async] = GetParam();
  const at::Tensor in = rank_data(rank_, kN, dtype);
  const at::Tensor out = at::full({size_ * kN}, 99, in.options());
  if (async) {
    finish(comm_->all_gather_async(out, in));
  } else {
    comm_->all_gather(out, in);
  }
  for (int r = 0; r < size_; ++r) {
    EXPECT_TRUE(at::equal(out.slice(0, r * kN, (r + 1) * kN), rank_data(r, kN, dtype)))
        << "slot of rank " << r;
  }
}

TEST_P(CommTest, ReduceScatterSumAndAverage) {
  const auto [dtype, async] = GetParam();
  std::vector<ReduceOp> ops = {ReduceOp::kSum};
  if (at::isFloatingType(dtype)) ops.push_back(ReduceOp::kAvg);
  for (ReduceOp op : ops) {
    SCOPED_TRACE(std::string(to_string(op)));
    const at::Tensor in = rank_data(rank_, size_ * kN, dtype, 1);
    const at::Tensor out = at::zeros({kN}, in.options());
    if (async) {
      finish(comm_->reduce_scatter_async(out, in, op));
    } else {
      comm_->reduce_scatter(out, in, op);
    }
    const at::Tensor want =
        reduce_all(op, size_ * kN, dtype, 1).slice(0, rank_ * kN, (rank_ + 1) * kN);
    expect_close(out, want);
  }
}

TEST_P(CommTest, AllReduceEveryOp) {
  const auto [dtype, async] = GetParam();
  std::vector<ReduceOp> ops = {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin};
  if (at::isFloatingType(dtype)) ops.push_back(ReduceOp::kAvg);
  for (ReduceOp op : ops) {
    SCOPED_TRACE(std::string(to_string(op)));
    const at::Tensor t = rank_data(rank_, kN, dtype, 2).reshape({1, kN});  // any shape
    if (async) {
      finish(comm_->all_reduce_async(t, op));
    } else {
      comm_->all_reduce(t, op);
    }
    expect_close(t.reshape({kN}), reduce_all(op, kN, dtype, 2));
  }
}

TEST_P(CommTest, BroadcastFromEveryRoot) {
  const auto [dtype, async] = GetParam();
  for (int root = 0; root < size_; ++root) {
    const at::Tensor t = rank_data(rank_, kN, dtype, 3);
    if (async) {
      finish(comm_->broadcast_async(t, root));
    } else {
      comm_->broadcast(t, root);
    }
    EXPECT_TRUE(at::equal(t, rank_data(root, kN, dtype, 3))) << "root " << root;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CommTest,
                         ::testing::Values(Case{at::kFloat, false}, Case{at::kFloat, true},
                                           Case{at::kDouble, false}, Case{at::kDouble, true},
                                           Case{at::kBFloat16, false}, Case{at::kBFloat16, true},
                                           Case{at::kLong, false}, Case{at::kLong, true}),
                         case_name);

class CommBehaviour : public ::testing::Test {
 protected:
  std::unique_ptr<Communicator> make(bool verify = true) {
    return muse::testing::make_test_communicator(verify);
  }
};

TEST_F(CommBehaviour, ManyAsyncCollectivesInFlightCompleteInAnyWaitOrder) {
  auto comm = make();
  const int n = comm->size();
  std::vector<at::Tensor> tensors;
  std::vector<std::unique_ptr<Work>> works;
  for (int i = 0; i < 8; ++i) {
    tensors.push_back(at::full({1000}, static_cast<double>(comm->rank() + i), at::kDouble));
    works.push_back(comm->all_reduce_async(tensors.back()));
  }
  for (int i = 7; i >= 0; --i)
    works[i]->wait();
  for (int i = 0; i < 8; ++i) {
    const double want = n * (n - 1) / 2.0 + n * i;
    EXPECT_EQ(tensors[i][0].item<double>(), want);
    EXPECT_EQ(tensors[i][999].item<double>(), want);
  }
}

TEST_F(CommBehaviour, TwoCommunicatorsRunCollectivesConcurrently) {
  // FSDP prefetches all-gathers on one communicator while reduce-scatters of
  // gradients run on another.
  auto gather_comm = make();
  auto reduce_comm = make();
  const int64_t n = gather_comm->size();
  const at::Tensor shard =
      at::full({1 << 16}, static_cast<double>(gather_comm->rank()), at::kFloat);
  const at::Tensor gathered = at::empty({n << 16}, at::kFloat);
  const at::Tensor grads = at::ones({n << 16}, at::kFloat);
  const at::Tensor grad_shard = at::empty({1 << 16}, at::kFloat);
  auto gather = gather_comm->all_gather_async(gathered, shard);
  auto reduce = reduce_comm->reduce_scatter_async(grad_shard, grads, ReduceOp::kSum);
  reduce->wait();
  gather->wait();
  for (int64_t r = 0; r < n; ++r) {
    EXPECT_EQ(gathered[r << 16].item<float>(), static_cast<float>(r));
  }
  EXPECT_TRUE(at::all(grad_shard == static_cast<float>(n)).item<bool>());
}

TEST_F(CommBehaviour, WaitIsIdempotentAndBarrierWorks) {
  auto comm = make();
  auto work = comm->barrier_async();
  work->wait();
  work->wait();
  EXPECT_TRUE(work->completed());
  comm->barrier();
}

TEST_F(CommBehaviour, CountsCallsAndRingBytes) {
  auto comm = make();
  const int64_t n = comm->size();
  const at::Tensor shard = at::ones({10}, at::kFloat);  // 40 bytes
  const at::Tensor full = at::ones({10 * n}, at::kFloat);
  comm->all_gather(full, shard);
  comm->reduce_scatter(shard, full);
  comm->all_reduce(full);
  comm->broadcast(full, 0);
  const CommStats s = comm->stats();
  EXPECT_EQ(s[Collective::kAllGather].calls, 1);
  EXPECT_EQ(s[Collective::kAllGather].payload_bytes, 40);
  EXPECT_EQ(s[Collective::kAllGather].wire_bytes, 40 * (n - 1));
  EXPECT_EQ(s[Collective::kReduceScatter].wire_bytes, 40 * (n - 1));
  EXPECT_EQ(s[Collective::kAllReduce].wire_bytes, 2 * 40 * (n - 1));
  EXPECT_EQ(s[Collective::kBroadcast].wire_bytes, 40 * n);
  EXPECT_EQ(s.total_wire_bytes(), 40 * (n - 1) * 4 + 40 * n);
  EXPECT_GT(s[Collective::kAllReduce].seconds, 0.0);
  comm->reset_stats();
  EXPECT_EQ(comm->stats().total_wire_bytes(), 0);
}

TEST_F(CommBehaviour, ShapeMismatchBetweenRanksIsAnErrorOnEveryRank) {
  auto comm = make();
  // Rank 0 reduces 4 elements, the others 5.
  const at::Tensor t = at::ones({comm->rank() == 0 ? 4 : 5}, at::kFloat);
  try {
    comm->all_reduce(t);
    FAIL() << "a shape mismatch went unnoticed";
  } catch (const DistError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("ranks disagree"), std::string::npos) << what;
    EXPECT_NE(what.find("Float[4]"), std::string::npos) << what;
    EXPECT_NE(what.find("Float[5]"), std::string::npos) << what;
  }
  // Nothing was sent: the communicator stays usable.
  const at::Tensor ok = at::ones({3}, at::kFloat);
  comm->all_reduce(ok);
  EXPECT_EQ(ok[0].item<float>(), static_cast<float>(comm->size()));
}

TEST_F(CommBehaviour, DtypeAndCollectiveMismatchesAreErrors) {
  auto comm = make();
  const at::Tensor t = at::ones({4}, comm->rank() == 0 ? at::kFloat : at::kDouble);
  EXPECT_THROW(comm->all_reduce(t), DistError);
  const at::Tensor u = at::ones({4}, at::kFloat);
  if (comm->rank() == 0) {
    EXPECT_THROW(comm->all_reduce(u), DistError);
  } else {
    EXPECT_THROW(comm->broadcast(u, 0), DistError);
  }
  comm->barrier();
}

TEST_F(CommBehaviour, SelfCheckPasses) {
  auto comm = make();
  const auto rows = run_self_check(*comm, 257);
  EXPECT_EQ(rows.size(), 23u);
  for (const auto& row : rows)
    EXPECT_GT(row.wire_bytes, 0) << row.collective << " " << row.dtype;
}

TEST_F(CommBehaviour, CollectivesRunWithoutVerification) {
  auto comm = make(/*verify=*/false);
  const at::Tensor t = at::full({5}, 2.0, at::kFloat);
  comm->all_reduce(t, ReduceOp::kAvg);
  EXPECT_EQ(t[4].item<float>(), 2.0f);
}

// run_agreed: the lowest failing rank rethrows its own error; the others
// learn which rank failed and whether it was a config error.
TEST_F(CommBehaviour, AgreedFailureNamesTheLowestRankAndItsKind) {
  auto comm = make();
  const int last = comm->size() - 1;
  EXPECT_NO_THROW(run_agreed(*comm, [] {}));
  const auto fail_from_rank_one = [&] {
    if (comm->rank() == 1) throw config::ConfigError("rl.prompts", "missing");
    if (comm->rank() == last && last > 1) throw std::runtime_error("disk full");
  };
  try {
    run_agreed(*comm, fail_from_rank_one);
    ADD_FAILURE() << "no rank threw";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(comm->rank(), 1);
    EXPECT_EQ(e.key(), "rl.prompts");
  } catch (const PeerFailure& e) {
    EXPECT_NE(comm->rank(), 1);
    EXPECT_TRUE(e.config_error());
    EXPECT_STREQ(e.what(), "rank 1 failed");
  }
  try {
    run_agreed(*comm, [&] {
      if (comm->rank() == last) throw std::runtime_error("disk full");
    });
    ADD_FAILURE() << "no rank threw";
  } catch (const PeerFailure& e) {
    EXPECT_NE(comm->rank(), last);
    EXPECT_FALSE(e.config_error());
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(comm->rank(), last);
    EXPECT_STREQ(e.what(), "disk full");
  }
}

TEST_F(CommBehaviour, WorldMatchesMpi) {
  const World& w = session().world();
  EXPECT_EQ(w.launcher, "mpirun");
  EXPECT_GT(w.size, 1);
  EXPECT_EQ(w.n_nodes, 1);
  EXPECT_EQ(w.local_size, w.size);
  EXPECT_EQ(w.local_rank, w.rank);
  EXPECT_EQ(w.node, 0);
}

}  // namespace
}  // namespace muse::comm
