// The memory tracker, and the plan against what it measures: shard bytes
// exactly, communication bytes exactly (counted by the communicator of a
// simulated N-rank world), and the peak of a training step within 15% for
// several shapes and FSDP options.
//
// Legend: N world size, B micro-batch rows, T time.
#include "trainer/memory_meter.h"
#include "trainer/memory_plan.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <ostream>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "config/schema.h"
#include "model/chunked_loss.h"
#include "model/forward.h"
#include "model/layout.h"
#include "trainer/adamw.h"
#include "trainer/fsdp.h"

namespace muse::trainer {
namespace {

// One intra-op thread: the peaks do not depend on it (only flash attention's
// per-thread scratch does, by kilobytes), and on a loaded machine LibTorch's
// spinning worker threads make the test ten times slower.
class OneThread : public ::testing::Environment {
 public:
  void SetUp() override { at::set_num_threads(1); }
};
const ::testing::Environment* const kOneThread = ::testing::AddGlobalTestEnvironment(new OneThread);

// Allocated during static initialisation, before any test installs the
// tracker, so that freeing it exercises a block the tracker never counted.
at::Tensor g_allocated_before_tracking = at::ones({1024});

// Rank 0 of a world of N ranks that all hold the same data as this one: an
// all-gather repeats the input N times, a sum is N times the value. The
// communicator base class counts the traffic of the N-rank collectives, and
// the buffers have the sizes a real rank would see.
class ReplicaCommunicator final : public comm::Communicator {
 public:
  explicit ReplicaCommunicator(int world_size) : Communicator(0, world_size) {}
  std::string_view backend() const override { return "replica"; }

 protected:
  std::unique_ptr<comm::Work> launch(Call call) override {
    const int64_t n = size();
    const bool sum = call.op == comm::ReduceOp::kSum;
    switch (call.kind) {
      case comm::Collective::kAllGather:
        call.out.view({n, -1}).copy_(call.in.view({1, -1}));
        break;
      case comm::Collective::kReduceScatter:
        call.out.copy_(call.in.narrow(0, 0, call.out.numel()));
        if (sum) call.out.mul_(n);
        break;
      case comm::Collective::kAllReduce:
        if (sum) call.in.mul_(n);
        break;
      case comm::Collective::kBroadcast:
      case comm::Collective::kBarrier:
        break;
    }
    return std::make_unique<comm::DoneWork>();
  }
};

model::ModelConfig custom_config(int64_t vocab, int64_t dim, int64_t layers, int64_t heads,
                                 int64_t kv_heads, int64_t ffn, bool tied,
                                 int64_t max_seq_len = 256) {
  model::ModelConfig cfg;
  cfg.preset = "custom";
  cfg.vocab_size = vocab;
  cfg.dim = dim;
  cfg.n_layers = layers;
  cfg.n_heads = heads;
  cfg.n_kv_heads = kv_heads;
  cfg.ffn_hidden = ffn;
  cfg.max_seq_len = max_seq_len;
  cfg.tie_embeddings = tied;
  return cfg;
}

// A micro-batch as the loader makes them: two packed documents per row.
struct MicroBatch {
  model::Inputs in;
  at::Tensor targets;  // (B, T)
};

MicroBatch make_batch(const model::ModelConfig& cfg, int64_t rows, int64_t time) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor tokens = at::randint(8, cfg.vocab_size, {rows, time + 1}, gen, at::kLong);
  MicroBatch b;
  b.in.tokens = tokens.narrow(1, 0, time).contiguous();
  b.targets = tokens.narrow(1, 1, time).contiguous();
  b.in.segment_ids = at::ones({rows, time}, at::kInt);
  b.in.segment_ids.narrow(1, time / 2, time - time / 2).fill_(2);
  return b;
}

at::Tensor loss_of(const model::ModelConfig& cfg, const model::HeadOutput& head,
                   const at::Tensor& targets, int64_t loss_chunk = 0) {
  return model::head_text_loss(head, targets, cfg.image_token_id, loss_chunk).sum /
         double(targets.numel());
}

// ---- The tracker. ----

TEST(CpuMemoryTracker, CountsLiveAndPeakBytes) {
  track_cpu_memory();
  const int64_t base = cpu_memory_stats().current_bytes;
  reset_peak_cpu_memory();
  {
    const at::Tensor a = at::empty({1000}, at::kFloat);  // 4000 bytes
    const at::Tensor b = at::empty({500}, at::kDouble);  // 4000 bytes
    EXPECT_EQ(cpu_memory_stats().current_bytes, base + 8000);
  }
  EXPECT_EQ(cpu_memory_stats().current_bytes, base);
  EXPECT_EQ(cpu_memory_stats().peak_bytes, base + 8000);
  reset_peak_cpu_memory();
  EXPECT_EQ(cpu_memory_stats().peak_bytes, base);
  track_cpu_memory();  // a second call changes nothing
  { const at::Tensor c = at::empty({10}, at::kFloat); }
  EXPECT_EQ(cpu_memory_stats().peak_bytes, base + 40);
}

TEST(CpuMemoryTracker, FreesUncountedBlocksThroughTheirOwnAllocator) {
  track_cpu_memory();
  const int64_t base = cpu_memory_stats().current_bytes;
  g_allocated_before_tracking.reset();
  EXPECT_EQ(cpu_memory_stats().current_bytes, base);
}

TEST(CpuMemoryTracker, SupportsTheRawInterface) {
  track_cpu_memory();
  c10::Allocator* allocator = c10::GetCPUAllocator();
  const int64_t base = cpu_memory_stats().current_bytes;
  void* block = allocator->raw_allocate(4096);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(block) % 64, 0u);  // LibTorch's CPU alignment
  EXPECT_EQ(cpu_memory_stats().current_bytes, base + 4096);
  allocator->raw_deallocate(block);
  EXPECT_EQ(cpu_memory_stats().current_bytes, base);
}

TEST(CpuMemoryTracker, CountsAllocationsFromManyThreads) {
  track_cpu_memory();
  const int64_t base = cpu_memory_stats().current_bytes;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 2000; ++i) {
        const at::Tensor x = at::empty({16 + i % 7}, at::kFloat);
      }
    });
  }
  for (std::thread& t : threads)
    t.join();
  EXPECT_EQ(cpu_memory_stats().current_bytes, base);
}

TEST(CpuBlockCache, ReusesFreedLargeBlocks) {
  track_cpu_memory();
  set_cpu_block_cache(true);
  const int64_t n = (8 << 20) / 4;  // 8 MiB of floats
  void* first = nullptr;
  {
    const at::Tensor a = at::empty({n}, at::kFloat);
    first = a.data_ptr();
  }
  EXPECT_GE(cpu_cached_bytes(), 8 << 20);
  {
    // The same size class (up to 1/8 smaller) takes the cached block.
    const at::Tensor b = at::empty({n - n / 16}, at::kFloat);
    EXPECT_EQ(b.data_ptr(), first);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data_ptr()) % 64, 0u);
  }
  {
    // Much smaller requests do not pin a large block.
    const at::Tensor c = at::empty({n / 4}, at::kFloat);
    EXPECT_NE(c.data_ptr(), first);
  }
  set_cpu_block_cache(false);
  EXPECT_EQ(cpu_cached_bytes(), 0);
  { const at::Tensor d = at::empty({n}, at::kFloat); }
  EXPECT_EQ(cpu_cached_bytes(), 0);  // off: freed blocks go back to the OS
  set_cpu_block_cache(true);
}

TEST(CpuBlockCache, NeverHoldsMoreThanThePeakInUse) {
  track_cpu_memory();
  set_cpu_block_cache(true);  // empties the cache
  const int64_t mib = (1 << 20) / 4;
  { const at::Tensor big = at::empty({64 * mib}, at::kFloat); }  // a 64 MiB peak
  // Many blocks of new sizes: each miss gives back cached blocks so that in
  // use + cached stays within the 64 MiB (plus the page rounding) peak.
  for (int64_t size = 2; size < 30; size += 3) {  // a + b stays under 64 MiB
    const at::Tensor a = at::empty({size * mib}, at::kFloat);
    const at::Tensor b = at::empty({(size + 1) * mib}, at::kFloat);
    EXPECT_LE(cpu_cached_bytes() + a.nbytes() + b.nbytes(), (64 << 20) + 3 * 8192);
  }
  EXPECT_LE(cpu_cached_bytes(), (64 << 20) + 8192);
  // Values written through a cached block are the caller's own.
  const at::Tensor z = at::zeros({3 * mib}, at::kFloat);
  EXPECT_EQ(z.abs().sum().item<float>(), 0.0f);
}

// ---- The plan's exact parts. ----

TEST(MemoryPlan, ShardBytesAreTheShardPlans) {
  const model::ModelConfig cfg = custom_config(100, 24, 2, 4, 2, 40, false);
  for (int n : {1, 2, 3, 4, 7}) {
    PlanInputs in;
    in.world_size = n;
    const MemoryPlan plan = plan_memory(cfg, in);
    int64_t shard_numel = 0;
    for (const model::UnitLayout& unit : model::model_layout(cfg))
      shard_numel += shard_unit(unit.numel, n).shard_numel;
    EXPECT_EQ(plan.param_shard_bytes, 4 * shard_numel) << n;
    EXPECT_EQ(plan.grad_shard_bytes, 4 * shard_numel) << n;
    EXPECT_EQ(plan.optimizer_bytes, 8 * shard_numel) << n;
    // ZeRO-3: 16 bytes per parameter over N ranks, up to the shard padding.
    const double zero3 = 16.0 * double(model::param_count(cfg)) / n;
    const int64_t state = plan.param_shard_bytes + plan.grad_shard_bytes + plan.optimizer_bytes;
    EXPECT_GE(state, zero3);
    EXPECT_LE(state, zero3 + 16.0 * kShardAlign * (cfg.n_layers + 2));

    ReplicaCommunicator comm(n);
    const FsdpModel fsdp(cfg, 1, comm, FsdpOptions{});
    EXPECT_EQ(plan.param_shard_bytes + plan.grad_shard_bytes, fsdp.shard_bytes()) << n;
  }
}

TEST(MemoryPlan, FlopsCountEveryTokenOfTheStep) {
  const model::ModelConfig cfg;
  PlanInputs in;
  in.world_size = 4;
  in.batch_rows = 2;
  in.seq_len = 128;
  in.grad_accum = 3;
  const MemoryPlan plan = plan_memory(cfg, in);
  const double per_token = double(model::flops_per_token(cfg, 128));
  EXPECT_EQ(plan.flops_per_token, per_token);
  EXPECT_EQ(plan.flops_per_step_rank, per_token * 3 * 2 * 128);
  EXPECT_EQ(plan.flops_per_step, per_token * 4 * 3 * 2 * 128);
}

// The wire bytes of one micro-batch's forward_backward on a simulated N-rank
// world equal the plan's, less the step's scalar all-reduces.
struct CommCase {
  const char* name;
  bool tied;
  FsdpOptions options;
};

void PrintTo(const CommCase& c, std::ostream* out) {
  *out << c.name;
}

class CommBytes : public ::testing::TestWithParam<CommCase> {};

TEST_P(CommBytes, MatchTheCollectivesOfForwardBackward) {
  const CommCase& c = GetParam();
  const model::ModelConfig cfg = custom_config(64, 32, 2, 4, 2, 48, c.tied);
  for (int n : {2, 4}) {
    ReplicaCommunicator comm(n);
    FsdpModel fsdp(cfg, 1, comm, c.options);
    const MicroBatch b = make_batch(cfg, 2, 12);
    for (int64_t accum : {1, 3}) {
      comm.reset_stats();
      for (int64_t m = 0; m < accum; ++m)
        fsdp.forward_backward(
            b.in, [&](const model::HeadOutput& h) { return loss_of(cfg, h, b.targets); });
      PlanInputs in{.world_size = n, .batch_rows = 2, .seq_len = 12, .grad_accum = accum};
      in.fsdp = c.options;
      const int64_t scalar_all_reduces = 4 * (2 * 8 * (n - 1) / n);
      EXPECT_EQ(plan_memory(cfg, in).comm_wire_bytes_per_step - scalar_all_reduces,
                comm.stats().total_wire_bytes())
          << "N=" << n << " grad_accum=" << accum;
    }
  }
}

FsdpOptions options_of(bool checkpointing, bool keep, at::ScalarType param = at::kFloat,
                       at::ScalarType reduce = at::kFloat, int64_t prefetch = 1) {
  FsdpOptions o;
  o.prefetch = prefetch;
  o.activation_checkpointing = checkpointing;
  o.keep_gathered = keep;
  o.param_dtype = param;
  o.reduce_dtype = reduce;
  return o;
}

INSTANTIATE_TEST_SUITE_P(
    Options, CommBytes,
    ::testing::Values(CommCase{"TiedRecompute", true, options_of(true, false)},
                      CommCase{"UntiedRecompute", false, options_of(true, false)},
                      CommCase{"KeepGathered", false, options_of(true, true)},
                      CommCase{"NoCheckpointing", true, options_of(false, true)},
                      CommCase{"Bf16", false,
                               options_of(true, false, at::kBFloat16, at::kBFloat16)}),
    [](const ::testing::TestParamInfo<CommCase>& p) { return p.param.name; });

TEST(MemoryPlan, InputsFollowTheTrainingLoop) {
  TrainerConfig trainer;
  trainer.grad_accum = 2;
  const PlanInputs in = plan_inputs(trainer, 16, 128, 4, "mpi");
  EXPECT_EQ(in.batch_rows, 2);
  EXPECT_EQ(in.seq_len, 128);
  EXPECT_EQ(in.fsdp.param_dtype, at::kFloat);
  EXPECT_EQ(plan_inputs(trainer, 16, 128, 4, "nccl").fsdp.param_dtype, at::kBFloat16);
  EXPECT_THROW(plan_inputs(trainer, 12, 128, 4, "mpi"), config::ConfigError);
}

TEST(MemoryPlan, FormatNamesEveryFigure) {
  PlanInputs in;
  in.world_size = 2;
  const std::string text = format_memory_plan(model::ModelConfig{}, in);
  for (const char* what :
       {"parameters", "gradients", "optimizer state", "gathered buffers", "activations", "total",
        "FLOPs per step", "per token", "communication per step"})
    EXPECT_NE(text.find(what), std::string::npos) << what;
}

// Packed rows within their segment boundaries make every activation term
// linear in the tokens: flash's variable-length kernel in bf16 on a GPU, and
// SDPA per group of equal-length segments on the CPU past
// model::kDenseMaskMaxLen. The dense mask of shorter CPU rows is (B,1,T,T).
// (Models whose peak is the head's phase, whose terms are all per token.)
TEST(MemoryPlan, ActivationsAreLinearInTheTokensWithoutTheDenseMask) {
  TrainerConfig trainer;
  const auto activations = [&](const model::ModelConfig& cfg, int64_t seq_len,
                               std::string_view backend) {
    return plan_memory(cfg, plan_inputs(trainer, 2, seq_len, 1, backend)).activation_bytes;
  };
  const model::ModelConfig eight_b = model::preset_config("8b");
  EXPECT_EQ(activations(eight_b, 8192, "nccl"), 2 * activations(eight_b, 4096, "nccl"));
  const model::ModelConfig small = custom_config(8192, 64, 2, 4, 2, 192, false, 4096);
  EXPECT_EQ(activations(small, 2048, "mpi"), 2 * activations(small, 1024, "mpi"));
  // Short CPU rows: at least the bool (B,1,T,T) mask grows with T squared.
  const int64_t B = 2, T = model::kDenseMaskMaxLen;
  EXPECT_GE(activations(small, T, "mpi") - 2 * activations(small, T / 2, "mpi"), B * T * T / 2);
}

// The figures docs/memory.md quotes: the 8b preset at 8,192 tokens, two
// rows per rank on 64 GPUs (configs/cluster/pretrain-8n-h100.yaml), bf16.
TEST(MemoryPlan, EightBillionAtEightThousandTokens) {
  const model::ModelConfig cfg = model::preset_config("8b");
  const PlanInputs in = plan_inputs(TrainerConfig{}, 128, 8192, 64, "nccl");
  const MemoryPlan plan = plan_memory(cfg, in);
  std::printf("%s\n", format_memory_plan(cfg, in).c_str());
  // No (T,T) term: activation checkpointing keeps the 33 unit inputs, and
  // the head's three (B,T,V) fp32 buffers dominate.
  const int64_t c = 2 * 8192 * cfg.dim, v = 2 * 8192 * cfg.vocab_size;
  EXPECT_GT(plan.activation_bytes, 33 * 2 * c + 3 * 4 * v);
  EXPECT_LT(plan.activation_bytes, 33 * 2 * c + 3 * 4 * v + 3 * 4 * c);
}

// ---- The planned peak against the measured one. ----

struct PeakCase {
  const char* name;
  model::ModelConfig cfg;
  int world_size;
  int64_t rows;  // B
  int64_t time;  // T
  int64_t grad_accum;
  FsdpOptions options;
  int64_t loss_chunk = 0;  // K, trainer.loss_chunk_tokens
};

void PrintTo(const PeakCase& c, std::ostream* out) {
  *out << c.name;
}

class PlannedPeak : public ::testing::TestWithParam<PeakCase> {};

// Builds the sharded model and its optimizer, then runs grad_accum
// micro-batches and an AdamW step with the tracker on; the peak is
// everything allocated since the start. More micro-batches do not raise the
// peak beyond the batches the step holds.
TEST_P(PlannedPeak, IsWithin15PercentOfTheMeasuredPeak) {
  const PeakCase& c = GetParam();
  PlanInputs in{.world_size = c.world_size,
                .batch_rows = c.rows,
                .seq_len = c.time,
                .grad_accum = c.grad_accum,
                .loss_chunk_tokens = c.loss_chunk};
  in.fsdp = c.options;
  const MemoryPlan plan = plan_memory(c.cfg, in);
  const int64_t planned_state = plan.param_shard_bytes + plan.grad_shard_bytes +
                                plan.optimizer_bytes + plan.optimizer_scratch_bytes;

  track_cpu_memory();
  const int64_t base = cpu_memory_stats().current_bytes;
  reset_peak_cpu_memory();
  {
    ReplicaCommunicator comm(c.world_size);
    FsdpModel fsdp(c.cfg, 1, comm, c.options);
    std::vector<AdamWShard> optimizer;
    for (const FsdpUnit& unit : fsdp.units())
      optimizer.emplace_back(decay_mask(unit.layout, unit.shards, 0), AdamWOptions{});
    EXPECT_EQ(cpu_memory_stats().current_bytes - base, planned_state);
    std::vector<MicroBatch> batches;
    for (int64_t m = 0; m < c.grad_accum; ++m)
      batches.push_back(make_batch(c.cfg, c.rows, c.time));
    for (const MicroBatch& b : batches) {
      fsdp.forward_backward(b.in, [&](const model::HeadOutput& h) {
        return loss_of(c.cfg, h, b.targets, c.loss_chunk);
      });
    }
    for (size_t u = 0; u < optimizer.size(); ++u)
      optimizer[u].step(fsdp.units()[u].param, fsdp.units()[u].grad, 1e-3);
  }
  const double measured = double(cpu_memory_stats().peak_bytes - base);
  const double planned = double(plan.total_bytes);
  // The part above the shards and optimizer state, on its own, so that an
  // error there cannot hide behind a large state.
  const double measured_transient = measured - double(planned_state);
  const double planned_transient = double(plan.gathered_bytes + plan.activation_bytes);
  std::printf(
      "%s: measured %.2f MiB, planned %.2f MiB (%+.1f%%); above the state %.2f vs %.2f MiB\n",
      c.name, measured / (1 << 20), planned / (1 << 20), 100.0 * (planned - measured) / measured,
      measured_transient / (1 << 20), planned_transient / (1 << 20));
  EXPECT_LE(std::abs(planned - measured), 0.15 * measured);
  EXPECT_LE(std::abs(planned_transient - measured_transient), 0.15 * measured_transient);
}

model::ModelConfig tiny_preset() {
  return model::ModelConfig{};
}

INSTANTIATE_TEST_SUITE_P(
    Configs, PlannedPeak,
    ::testing::Values(
        PeakCase{"TinyPreset", tiny_preset(), 1, 8, 256, 1, options_of(true, false)},
        PeakCase{"WideUntied", custom_config(512, 256, 3, 8, 4, 768, false), 1, 2, 256, 1,
                 options_of(true, false)},
        PeakCase{"WideKeepGatheredNoCheckpointing", custom_config(512, 256, 3, 8, 4, 768, false), 1,
                 2, 256, 1, options_of(false, true)},
        PeakCase{"WideOn4Ranks", custom_config(512, 256, 3, 8, 4, 768, true), 4, 2, 256, 2,
                 options_of(true, false)},
        PeakCase{"NoPrefetch", custom_config(512, 256, 3, 8, 4, 768, false), 1, 2, 256, 1,
                 options_of(true, false, at::kFloat, at::kFloat, 0)},
        PeakCase{"PrefetchThreeUnits", custom_config(512, 256, 3, 8, 4, 768, false), 2, 2, 256, 1,
                 options_of(true, false, at::kFloat, at::kFloat, 3)},
        PeakCase{"Bf16Compute", custom_config(1024, 128, 2, 4, 2, 384, true), 2, 4, 128, 2,
                 options_of(true, false, at::kBFloat16, at::kFloat)},
        // A vocabulary large enough for the logits to be the peak, with
        // the whole logits and in chunks of tokens.
        PeakCase{"LargeVocab", custom_config(8192, 64, 2, 4, 2, 192, false), 1, 2, 256, 1,
                 options_of(true, false)},
        PeakCase{"LargeVocabChunkedLoss", custom_config(8192, 64, 2, 4, 2, 192, false), 1, 2, 256,
                 1, options_of(true, false), 96},
        PeakCase{"LargeVocabChunkedLossTiedBf16", custom_config(8192, 64, 2, 4, 2, 192, true), 2, 2,
                 256, 1, options_of(true, false, at::kBFloat16, at::kFloat), 128},
        // Rows past model::kDenseMaskMaxLen: attention per group of
        // equal-length segments, every block's graph kept.
        PeakCase{"SegmentsKeepGatheredNoCheckpointing",
                 custom_config(512, 256, 3, 8, 4, 768, false, 640), 1, 2, 640, 1,
                 options_of(false, true)},
        PeakCase{"SegmentsBf16", custom_config(1024, 128, 2, 4, 2, 384, true, 640), 2, 2, 640, 1,
                 options_of(true, false, at::kBFloat16, at::kFloat)}),
    [](const ::testing::TestParamInfo<PeakCase>& p) { return p.param.name; });

}  // namespace
}  // namespace muse::trainer
