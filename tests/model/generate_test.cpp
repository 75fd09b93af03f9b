// Generation: KV-cache equivalence with the full forward, sampling, stopping.
//
// Shapes: B batch, T time, V vocab.
#include <gtest/gtest.h>

#include <algorithm>

#include <limits>

#include "model/generate.h"
#include "model/model.h"
#include "model_test_util.h"

namespace muse::model {
namespace {

using testing::random_images;
using testing::test_config;
using testing::text_tokens;
using testing::to_vector;

// Three prompts of different lengths; the second holds two images.
std::vector<Prompt> make_prompts(const ModelConfig& cfg, int64_t max_new) {
  std::vector<Prompt> prompts(3);
  prompts[0].tokens = to_vector(text_tokens(cfg, 1, 3, 21));
  prompts[1].tokens = to_vector(text_tokens(cfg, 1, 13, 22));
  for (int64_t t = 2; t < 10; ++t)
    prompts[1].tokens[t] = cfg.image_token_id;
  prompts[1].images = random_images(cfg, 2, 23);
  prompts[2].tokens = to_vector(text_tokens(cfg, 1, 7, 24));
  for (auto& p : prompts)
    p.max_new_tokens = max_new;
  return prompts;
}

// The full, cache-free forward of one prompt followed by `generated`: (T, V).
at::Tensor full_logits(const Model& m, const Prompt& p, const std::vector<int64_t>& generated) {
  std::vector<int64_t> ids = p.tokens;
  ids.insert(ids.end(), generated.begin(), generated.end());
  Inputs in{.tokens = at::tensor(ids, at::kLong).view({1, -1})};
  if (p.images.defined()) {
    // Every n_patches consecutive placeholders take the next image.
    std::vector<int64_t> slots;
    int64_t run = 0;
    for (int64_t t = 0; t < static_cast<int64_t>(p.tokens.size()); ++t) {
      run = p.tokens[t] == m.config().image_token_id ? run + 1 : 0;
      if (run > 0 && (run - 1) % m.config().n_patches() == 0) slots.insert(slots.end(), {0, t});
    }
    in.images = p.images;
    in.image_slots = at::tensor(slots, at::kLong).view({-1, 2});
  }
  at::NoGradGuard no_grad;
  return m.forward(in)[0];
}

GenerateOptions greedy() {
  GenerateOptions o;
  o.sampling.temperature = 0;
  return o;
}

// Greedy decoding step by step against full forwards of prompt + tokens.
void check_cached_decoding(const ModelConfig& cfg) {
  const Model m(cfg, 31);
  const int64_t n_new = 9;
  const auto prompts = make_prompts(cfg, n_new);
  // Drive the decoder by hand to see its logits at every step.
  Decoder decoder(m, prompts, n_new);
  std::vector<std::vector<int64_t>> tokens(prompts.size());
  std::vector<at::Tensor> step_logits;  // [n_new] of (B,V)
  for (int64_t s = 0; s < n_new; ++s) {
    step_logits.push_back(decoder.logits().clone());
    at::Tensor l = decoder.logits().clone();
    l.select(1, cfg.image_token_id).fill_(-std::numeric_limits<float>::infinity());
    const at::Tensor next = l.argmax(-1);  // (B)
    for (size_t b = 0; b < prompts.size(); ++b)
      tokens[b].push_back(next[b].item<int64_t>());
    decoder.step(next);
  }
  const auto gen = generate(m, prompts, greedy());
  for (size_t b = 0; b < prompts.size(); ++b) {
    EXPECT_EQ(gen[b].tokens, tokens[b]) << b;
    const int64_t len = static_cast<int64_t>(prompts[b].tokens.size());
    const at::Tensor full = full_logits(m, prompts[b], tokens[b]);  // (T,V)
    const at::Tensor full_logp = full.log_softmax(-1);
    for (int64_t s = 0; s < n_new; ++s) {
      const at::Tensor expected = full[len - 1 + s];
      const double scale = std::max(1.0, expected.abs().max().item<double>());
      EXPECT_LT((step_logits[s][b] - expected).abs().max().item<double>(), 1e-5 * scale)
          << "prompt " << b << " step " << s;
      at::Tensor masked = expected.clone();
      masked[cfg.image_token_id] = -std::numeric_limits<float>::infinity();
      EXPECT_EQ(masked.argmax().item<int64_t>(), tokens[b][s]) << "prompt " << b << " step " << s;
      EXPECT_NEAR(gen[b].logprobs[s], full_logp[len - 1 + s][tokens[b][s]].item<double>(), 1e-5);
    }
  }
}

TEST(Generate, CachedDecodingMatchesTheFullForward) {
  check_cached_decoding(test_config());
}

TEST(Generate, CachedDecodingWithReorderedWeightsMatchesTheFullForward) {
  // Wide enough that the decode steps take every projection in oneDNN's
  // layout on the CPU (generate.cpp's size thresholds).
  ModelConfig cfg = test_config();
  cfg.dim = 512;
  cfg.n_heads = 8;
  cfg.n_kv_heads = 4;
  cfg.ffn_hidden = 1536;
  cfg.vocab_size = 2048;
  cfg.init_std = 0.02;
  check_cached_decoding(cfg);
}

TEST(Generate, GroupSamplesShareOnePrefillAndDecodeAsTheirPromptAlone) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 33);
  const auto distinct = make_prompts(cfg, 6);
  // A GRPO-shaped batch: 2, 1 and 3 samples of the three prompts.
  const std::vector<Prompt> grouped = {distinct[0], distinct[0], distinct[1],
                                       distinct[2], distinct[2], distinct[2]};
  const std::vector<size_t> source = {0, 0, 1, 2, 2, 2};
  const Decoder one(m, distinct, 6), shared(m, grouped, 6);
  for (size_t b = 0; b < grouped.size(); ++b)
    EXPECT_TRUE(at::allclose(shared.logits()[b], one.logits()[source[b]], 1e-6, 1e-6)) << b;
  const auto alone = generate(m, distinct, greedy()), together = generate(m, grouped, greedy());
  for (size_t b = 0; b < grouped.size(); ++b)
    EXPECT_EQ(together[b].tokens, alone[source[b]].tokens) << b;
}

TEST(Generate, FinishedSequencesLeaveTheBatchAndTheOthersDecodeOn) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 34);
  const auto prompts = make_prompts(cfg, 8);
  Decoder full(m, prompts, 8), dropping(m, prompts, 8);
  const auto argmax = [&](const at::Tensor& logits) {
    at::Tensor l = logits.clone();
    l.select(1, cfg.image_token_id).fill_(-std::numeric_limits<float>::infinity());
    return l.argmax(-1);
  };
  for (int step = 0; step < 6; ++step) {
    const at::Tensor next = argmax(full.logits());  // (3)
    if (step == 2) {
      // Sequence 0 leaves: the last row (sequence 2) moves into its place.
      dropping.drop({0});
      EXPECT_EQ(dropping.sequences(), (std::vector<int64_t>{2, 1}));
    }
    if (step == 4) {
      dropping.drop({0});
      EXPECT_EQ(dropping.sequences(), (std::vector<int64_t>{1}));
    }
    const at::Tensor rows = at::tensor(dropping.sequences(), at::kLong);
    ASSERT_EQ(dropping.logits().size(0), rows.size(0));
    EXPECT_TRUE(at::allclose(dropping.logits(), full.logits().index_select(0, rows), 1e-5, 1e-5))
        << "step " << step;
    full.step(next);
    dropping.step(next.index_select(0, rows));
  }
  EXPECT_THROW(dropping.drop({1}), ModelError);
}

TEST(Generate, ASequencesSamplesDoNotDependOnWhenOthersFinish) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 35);
  GenerateOptions o;
  o.seed = 5;
  auto prompts = make_prompts(cfg, 12);
  const auto all_long = generate(m, prompts, o);
  prompts[0].max_new_tokens = 2;
  prompts[2].max_new_tokens = 5;
  const auto ragged = generate(m, prompts, o);
  for (size_t b = 0; b < prompts.size(); ++b) {
    const auto n = static_cast<std::ptrdiff_t>(ragged[b].tokens.size());
    ASSERT_EQ(n, prompts[b].max_new_tokens);
    EXPECT_TRUE(
        std::equal(ragged[b].tokens.begin(), ragged[b].tokens.end(), all_long[b].tokens.begin()))
        << b;
  }
}

// Steps of `form` against dynamic steps of the same model and prompts,
// greedy, with sequences leaving the batch so that the static forms run
// padded row counts (4 live rows, then 3 in 4, then 1).
void check_step_form(const Model& m, StepForm form) {
  const ModelConfig& cfg = m.config();
  auto prompts = make_prompts(cfg, 7);
  prompts.push_back(prompts[2]);
  prompts.back().tokens.push_back(5);
  for (Prompt& p : prompts) {
    if (!p.images.defined()) continue;
    p.images = p.images.to(m.flat_params()[kEmbedUnit].device());
  }
  Decoder dynamic(m, prompts, 7), other(m, prompts, 7, form);
  for (int step = 0; step < 7; ++step) {
    at::Tensor l = dynamic.logits().to(at::kCPU).clone();
    l.select(1, cfg.image_token_id).fill_(-std::numeric_limits<float>::infinity());
    const at::Tensor next = l.argmax(-1).to(dynamic.logits().device());  // (rows)
    ASSERT_EQ(other.sequences(), dynamic.sequences());
    EXPECT_TRUE(
        at::allclose(other.logits().to(at::kCPU), dynamic.logits().to(at::kCPU), 1e-5, 1e-5))
        << "step " << step;
    dynamic.step(next);
    other.step(next);
    if (step == 2 || step == 4) {
      const std::vector<int64_t> rows =
          step == 2 ? std::vector<int64_t>{1} : std::vector<int64_t>{0, 2};
      dynamic.drop(rows);
      other.drop(rows);
    }
  }
}

TEST(Generate, StaticStepsMatchDynamicSteps) {
  ModelConfig cfg = test_config();
  ASSERT_LT(cfg.n_kv_heads, cfg.n_heads);  // grouped-query decode attention
  check_step_form(Model(cfg, 36), StepForm::kStatic);
  cfg.n_kv_heads = cfg.n_heads;  // SDPA
  check_step_form(Model(cfg, 37), StepForm::kStatic);
  GenerateOptions o = greedy();
  const Model m(test_config(), 38);
  const auto prompts = make_prompts(m.config(), 9);
  const auto dynamic = generate(m, prompts, o);
  o.step_form = StepForm::kStatic;
  const auto stat = generate(m, prompts, o);
  for (size_t b = 0; b < prompts.size(); ++b)
    EXPECT_EQ(stat[b].tokens, dynamic[b].tokens) << b;
}

TEST(Generate, CudaGraphStepsMatchEagerSteps) {
#ifdef MUSE_WITH_CUDA
  if (!at::hasCUDA()) GTEST_SKIP() << "no GPU: CUDA graphs are compiled, not run";
  check_step_form(Model(test_config(), 39, at::kCUDA), StepForm::kCudaGraph);
#else
  const Model m(test_config(), 39);
  EXPECT_THROW(Decoder(m, make_prompts(m.config(), 2), 2, StepForm::kCudaGraph), ModelError);
#endif
}

TEST(Generate, SameSeedSameSamples) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 32);
  GenerateOptions o;
  o.sampling.temperature = 1.0;
  o.seed = 77;
  const auto prompts = make_prompts(cfg, 12);
  const auto a = generate(m, prompts, o), b = generate(m, prompts, o);
  o.seed = 78;
  const auto c = generate(m, prompts, o);
  bool any_differs = false;
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(a[i].tokens, b[i].tokens);
    EXPECT_EQ(a[i].logprobs, b[i].logprobs);
    any_differs = any_differs || a[i].tokens != c[i].tokens;
  }
  EXPECT_TRUE(any_differs);
}

TEST(Generate, TopKOneAndTinyTopPAreGreedy) {
  const ModelConfig cfg = test_config(/*tied=*/false);
  const Model m(cfg, 33);
  const auto prompts = make_prompts(cfg, 10);
  const auto reference = generate(m, prompts, greedy());
  GenerateOptions top_k;
  top_k.sampling = {.temperature = 1.3, .top_k = 1, .top_p = 1.0};
  top_k.seed = 5;
  GenerateOptions top_p;
  top_p.sampling = {.temperature = 0.7, .top_k = 0, .top_p = 1e-6};
  top_p.seed = 6;
  const auto k1 = generate(m, prompts, top_k), p0 = generate(m, prompts, top_p);
  for (size_t b = 0; b < prompts.size(); ++b) {
    EXPECT_EQ(k1[b].tokens, reference[b].tokens) << b;
    EXPECT_EQ(p0[b].tokens, reference[b].tokens) << b;
    EXPECT_EQ(k1[b].logprobs, reference[b].logprobs) << b;
  }
}

TEST(Generate, LogprobsAreUnderTheUnmodifiedSoftmax) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 34);
  const auto prompts = make_prompts(cfg, 8);
  GenerateOptions o;
  o.sampling = {.temperature = 0.6, .top_k = 5, .top_p = 0.9};
  o.seed = 9;
  const auto gen = generate(m, prompts, o);
  for (size_t b = 0; b < prompts.size(); ++b) {
    ASSERT_EQ(gen[b].tokens.size(), 8u);
    const int64_t len = static_cast<int64_t>(prompts[b].tokens.size());
    const at::Tensor logp = full_logits(m, prompts[b], gen[b].tokens).log_softmax(-1);
    for (size_t s = 0; s < gen[b].tokens.size(); ++s) {
      const at::Tensor row = logp[len - 1 + static_cast<int64_t>(s)];
      EXPECT_NEAR(gen[b].logprobs[s], row[gen[b].tokens[s]].item<double>(), 1e-5);
      // Top-k 5: only one of the 5 most likely (non-image) tokens can come out.
      at::Tensor masked = row.clone();
      masked[cfg.image_token_id] = -std::numeric_limits<float>::infinity();
      const at::Tensor top5 = std::get<1>(masked.topk(5));
      EXPECT_TRUE((top5 == gen[b].tokens[s]).any().item<bool>());
    }
  }
}

TEST(Generate, StopTokensAndLengthLimits) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 35);
  auto prompts = make_prompts(cfg, 10);
  const auto free_run = generate(m, prompts, greedy());
  // Stop prompt 0 at its 4th token (unless that token already occurs earlier).
  const int64_t stop = free_run[0].tokens[3];
  size_t first = 0;
  while (free_run[0].tokens[first] != stop)
    ++first;
  prompts[1].max_new_tokens = 2;
  prompts[2].max_new_tokens = 0;
  GenerateOptions o = greedy();
  o.stop_tokens = {stop};
  const auto gen = generate(m, prompts, o);
  EXPECT_EQ(gen[0].stop_reason, StopReason::kStopToken);
  EXPECT_EQ(gen[0].tokens, std::vector<int64_t>(free_run[0].tokens.begin(),
                                                free_run[0].tokens.begin() + first + 1));
  EXPECT_EQ(gen[0].logprobs.size(), gen[0].tokens.size());
  // Prompt 1 may also meet the stop token before its limit of 2.
  std::vector<int64_t> expected1;
  for (size_t s = 0; s < 2; ++s) {
    expected1.push_back(free_run[1].tokens[s]);
    if (free_run[1].tokens[s] == stop) break;
  }
  EXPECT_EQ(gen[1].tokens, expected1);
  EXPECT_EQ(gen[1].stop_reason,
            expected1.back() == stop ? StopReason::kStopToken : StopReason::kLength);
  EXPECT_TRUE(gen[2].tokens.empty());
  EXPECT_EQ(gen[2].stop_reason, StopReason::kLength);
  EXPECT_EQ(free_run[2].tokens.size(), 10u);
  EXPECT_EQ(free_run[2].stop_reason, StopReason::kLength);
}

TEST(Generate, ThinkLimitForcesTheEndOfReasoning) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 37);
  auto prompts = make_prompts(cfg, 10);
  const auto free_run = generate(m, prompts, greedy());
  // A think-end token the greedy runs do not produce in their first 3 tokens.
  int64_t think_end = 1;
  const auto in_first3 = [&](int64_t t) {
    return std::any_of(free_run.begin(), free_run.end(), [&](const Generation& g) {
      return std::find(g.tokens.begin(), g.tokens.begin() + 3, t) != g.tokens.begin() + 3;
    });
  };
  while (in_first3(think_end) || think_end == cfg.image_token_id)
    ++think_end;
  prompts[0].think_limit = 3;
  prompts[1].think_limit = 0;  // no limit: unchanged
  GenerateOptions o = greedy();
  o.think_end_token = think_end;
  o.record_entropy = true;
  const auto gen = generate(m, prompts, o);
  ASSERT_EQ(gen[0].tokens.size(), 10u);
  EXPECT_EQ(gen[0].forced_think_end, 3);
  EXPECT_EQ(std::vector<int64_t>(gen[0].tokens.begin(), gen[0].tokens.begin() + 3),
            std::vector<int64_t>(free_run[0].tokens.begin(), free_run[0].tokens.begin() + 3));
  EXPECT_EQ(gen[0].tokens[3], think_end);
  EXPECT_EQ(gen[1].tokens, free_run[1].tokens);
  EXPECT_EQ(gen[1].forced_think_end, -1);
  // After the forced token, decoding continues from it as if it were sampled;
  // its log-probability is the model's.
  const int64_t len = static_cast<int64_t>(prompts[0].tokens.size());
  const at::Tensor logp = full_logits(m, prompts[0], gen[0].tokens).log_softmax(-1);
  for (size_t s = 0; s < gen[0].tokens.size(); ++s) {
    const at::Tensor row = logp[len - 1 + static_cast<int64_t>(s)];
    EXPECT_NEAR(gen[0].logprobs[s], row[gen[0].tokens[s]].item<double>(), 1e-5);
    EXPECT_NEAR(gen[0].entropies[s], -(row.exp() * row).sum().item<double>(), 1e-4);
    if (s > 3) {
      at::Tensor masked = row.clone();
      masked[cfg.image_token_id] = -std::numeric_limits<float>::infinity();
      EXPECT_EQ(gen[0].tokens[s], masked.argmax().item<int64_t>()) << s;
    }
  }
  // A limit past a generated think-end token forces nothing.
  prompts = make_prompts(cfg, 10);
  prompts[2].think_limit = 5;
  o.think_end_token = free_run[2].tokens[1];
  const auto late = generate(m, prompts, o);
  EXPECT_EQ(late[2].forced_think_end, -1);
  EXPECT_EQ(late[2].tokens, free_run[2].tokens);
  o.think_end_token = -1;  // a limit without a token to force
  EXPECT_THROW(generate(m, prompts, o), ModelError);
}

TEST(Generate, BadRequestsAreErrors) {
  const ModelConfig cfg = test_config();
  const Model m(cfg, 36);
  auto prompts = make_prompts(cfg, 4);
  prompts[1].images = random_images(cfg, 1, 1);  // two placeholder runs' worth, one image
  EXPECT_THROW(generate(m, prompts, greedy()), ModelError);
  prompts = make_prompts(cfg, cfg.max_seq_len);  // prompt + new tokens beyond max_seq_len
  EXPECT_THROW(generate(m, prompts, greedy()), ModelError);
  prompts = make_prompts(cfg, 4);
  prompts[0].tokens.push_back(cfg.image_token_id);  // a run shorter than an image
  EXPECT_THROW(generate(m, prompts, greedy()), ModelError);
  prompts = make_prompts(cfg, 4);
  prompts[2].tokens.clear();
  EXPECT_THROW(generate(m, prompts, greedy()), ModelError);
  GenerateOptions o;
  o.sampling.top_p = 0;
  EXPECT_THROW(generate(m, make_prompts(cfg, 4), o), ModelError);
}

}  // namespace
}  // namespace muse::model
