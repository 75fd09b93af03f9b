// Adaptive re-expansion: the uncertainty signals, the expansion policy and,
// with a small random model, which budgets a problem goes through.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "comm/solo_communicator.h"
#include "config/schema.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "inference/adaptive.h"
#include "model/model.h"
#include "tests/model/model_test_util.h"
#include "tests/temp_dir.h"

namespace muse::inference {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(AnswerSpan, IsInsideTheLastCompletePair) {
  // 5 = <answer>, 6 = </answer>.
  const std::vector<int64_t> tokens = {9, 5, 1, 6, 9, 5, 2, 3, 6, 7};
  const auto span = answer_span(tokens, 5, 6);
  ASSERT_TRUE(span);
  EXPECT_EQ(span->begin, 6u);
  EXPECT_EQ(span->end, 8u);
  EXPECT_FALSE(answer_span(std::vector<int64_t>{5, 1, 2}, 5, 6));  // never closed
  EXPECT_FALSE(answer_span(std::vector<int64_t>{1, 6}, 5, 6));     // never opened
  EXPECT_FALSE(answer_span(std::vector<int64_t>{5, 6}, 5, 6));     // empty
  const std::vector<float> logprobs = {0, 0, 0, 0, 0, 0, -1, -2, 0, 0};
  EXPECT_DOUBLE_EQ(span_mean(logprobs, *span), -1.5);
}

TEST(Disagreement, IsTheShareOutsideTheMajority) {
  using A = std::vector<std::optional<std::string>>;
  const auto numeric = rewards::MatchMode::kNumeric;
  EXPECT_DOUBLE_EQ(disagreement(A{"3", "3.0", "3"}, numeric), 0);
  EXPECT_DOUBLE_EQ(disagreement(A{"3", "4", "3", "3"}, numeric), 0.25);
  EXPECT_DOUBLE_EQ(disagreement(A{"3", std::nullopt, "3", "5"}, numeric), 0.5);
  EXPECT_DOUBLE_EQ(disagreement(A{std::nullopt, std::nullopt}, numeric), 1);
  EXPECT_DOUBLE_EQ(disagreement(A{}, numeric), 1);
}

TEST(Uncertainty, EachSignalOnItsOwnScale) {
  using S = std::vector<std::optional<double>>;
  EXPECT_DOUBLE_EQ(uncertainty(UncertaintySignal::kLogprob, S{-0.2, -0.4}, 0), 0.3);
  EXPECT_DOUBLE_EQ(uncertainty(UncertaintySignal::kEntropy, S{0.5, 1.5}, 0), 1.0);
  EXPECT_DOUBLE_EQ(uncertainty(UncertaintySignal::kDisagreement, S{std::nullopt}, 0.25), 0.25);
  // A sample without an answer is as uncertain as can be.
  EXPECT_EQ(uncertainty(UncertaintySignal::kLogprob, S{-0.1, std::nullopt}, 0), kInf);
  EXPECT_EQ(uncertainty(UncertaintySignal::kEntropy, S{}, 0), kInf);
  AdaptiveConfig cfg;
  cfg.logprob_threshold = -0.3;
  cfg.entropy_threshold = 0.7;
  cfg.disagreement_threshold = 0.4;
  EXPECT_DOUBLE_EQ(expand_above(cfg, UncertaintySignal::kLogprob), 0.3);
  EXPECT_DOUBLE_EQ(expand_above(cfg, UncertaintySignal::kEntropy), 0.7);
  EXPECT_DOUBLE_EQ(expand_above(cfg, UncertaintySignal::kDisagreement), 0.4);
}

TEST(ExpansionPolicy, ExpandsOnlyUncertainAnswersThatCanChange) {
  const double threshold = 0.5;
  PassState pass{.uncertainty = 0.8, .has_larger_budget = true, .cut = true};
  EXPECT_EQ(choose_expansion(pass, threshold, ExpandMode::kContinue), Expansion::kContinue);
  EXPECT_EQ(choose_expansion(pass, threshold, ExpandMode::kRerun), Expansion::kRerun);
  // Sure enough (at the threshold is not above it): keep.
  pass.uncertainty = 0.5;
  EXPECT_EQ(choose_expansion(pass, threshold, ExpandMode::kContinue), Expansion::kStop);
  pass.uncertainty = kInf;
  // The largest budget was used: nothing to expand to.
  pass.has_larger_budget = false;
  EXPECT_EQ(choose_expansion(pass, threshold, ExpandMode::kRerun), Expansion::kStop);
  // Reasoning that ended by itself, greedy, same prompt: a new pass would
  // repeat it.
  pass.has_larger_budget = true;
  pass.cut = false;
  EXPECT_EQ(choose_expansion(pass, threshold, ExpandMode::kContinue), Expansion::kStop);
  EXPECT_EQ(choose_expansion(pass, threshold, ExpandMode::kRerun), Expansion::kStop);
  // ... unless the next pass differs (sampled, or the budget is stated):
  // then it is answered again, even in continue mode (nothing was cut).
  pass.next_may_differ = true;
  EXPECT_EQ(choose_expansion(pass, threshold, ExpandMode::kContinue), Expansion::kRerun);
  EXPECT_EQ(choose_expansion(pass, threshold, ExpandMode::kRerun), Expansion::kRerun);
}

std::string error_key(const AdaptiveConfig& cfg) {
  try {
    check_adaptive_config(cfg);
  } catch (const config::ConfigError& e) {
    return e.key();
  }
  return "";
}

TEST(AdaptiveConfig, BadSettingsNameTheirKey) {
  AdaptiveConfig cfg;
  EXPECT_EQ(error_key(cfg), "");
  cfg.budgets = {32, 16};
  EXPECT_EQ(error_key(cfg), "adaptive.budgets");
  cfg.budgets = {16, 16};
  EXPECT_EQ(error_key(cfg), "adaptive.budgets");
  cfg.budgets = {};
  EXPECT_EQ(error_key(cfg), "adaptive.budgets");
  cfg.budgets = {8, 32};
  cfg.signal = "disagreement";
  EXPECT_EQ(error_key(cfg), "adaptive.samples");
  cfg.samples = 4;
  EXPECT_EQ(error_key(cfg), "");
  cfg.expand = "jump";
  EXPECT_EQ(error_key(cfg), "adaptive.expand");
}

// A random model over a small trained tokenizer: it never answers, so every
// answer is maximally uncertain and reasoning is cut at each budget. (It does
// not open with <think> either, so its reasoning is measured in tokens
// before </think>.)
class AdaptiveModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data::TrainOptions options;
    options.vocab_size = 300;
    tokenizer_ = new data::Tokenizer(data::Tokenizer::train_from_texts(
        {"What is 3 plus 4? <think>3 plus 4 is 7</think><answer>7</answer>",
         "What is 2 times 2? <think>2 times 2 is 4</think><answer>4</answer>"},
        options));
    // The same vocabulary read as a plain chat model's: no reasoning or
    // answer markers.
    const muse::testing::TempDir dir;
    const std::string path = (dir.path() / "tokenizer.json").string();
    tokenizer_->save(path);
    plain_tokenizer_ = new data::Tokenizer(data::Tokenizer::load(
        path, {.think_begin = "", .think_end = "", .answer_begin = "", .answer_end = ""}));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
    delete plain_tokenizer_;
    plain_tokenizer_ = nullptr;
  }

  // The model tests' small shape, over this tokenizer's vocabulary.
  static model::ModelConfig config() {
    model::ModelConfig c = model::testing::test_config();
    c.vocab_size = tokenizer_->vocab_size();
    c.max_seq_len = 96;
    c.image_token_id = tokenizer_->special_id(data::kImage);
    return c;
  }

  std::vector<data::PromptRecord> problems() const {
    const data::PromptOptions opts{.image_tokens = 4, .image_size = 8, .image_channels = 3};
    return {data::make_prompt(*tokenizer_, "What is 3 plus 4?", "7", {}, ".", opts),
            data::make_prompt(*tokenizer_, "What is 2 times 2?", "4", {}, ".", opts)};
  }

  // Generated tokens before the first </think>.
  static int64_t reasoning_length(const rewards::Response& r) {
    const auto end =
        std::find(r.tokens.begin(), r.tokens.end(), tokenizer_->special_id(data::kThinkEnd));
    return end - r.tokens.begin();
  }

  AdaptiveSetup setup(const AdaptiveConfig& cfg) const {
    return {.cfg = &cfg, .tokenizer = tokenizer_};
  }

  // A model without markers whose answers are read as their last number.
  AdaptiveSetup plain_setup(const AdaptiveConfig& cfg) const {
    return {.cfg = &cfg,
            .tokenizer = plain_tokenizer_,
            .answer = {.forms = {rewards::AnswerForm::kLastNumber}}};
  }

  static data::Tokenizer* tokenizer_;
  static data::Tokenizer* plain_tokenizer_;
};

data::Tokenizer* AdaptiveModel::tokenizer_ = nullptr;
data::Tokenizer* AdaptiveModel::plain_tokenizer_ = nullptr;

std::string decoded(const data::Tokenizer& tok, std::span<const int64_t> tokens) {
  return tok.decode(std::vector<int32_t>(tokens.begin(), tokens.end()));
}

TEST_F(AdaptiveModel, TheLastNumbersTokensAreTheAnswerWithoutTags) {
  const data::Tokenizer& tok = *plain_tokenizer_;
  const rewards::AnswerForm last_number[] = {rewards::AnswerForm::kLastNumber};
  // A multi-byte character before the number: offsets are in bytes.
  for (const std::string text : {"3 plus 4 is 7", "Café: 3 plus 4 is 1,234.\nDone", "-12"}) {
    const std::vector<int32_t> ids = tok.encode(text);
    std::vector<int64_t> tokens(ids.begin(), ids.end());
    tokens.push_back(tok.roles().end());  // the stop token after the text
    const auto span = extracted_answer_span(tok, tokens, text, last_number);
    ASSERT_TRUE(span) << text;
    const std::string answer = *rewards::extract_answer(text, last_number);
    const std::span<const int64_t> all(tokens);
    // The span carries the answer, and no token less would.
    EXPECT_NE(decoded(tok, all.subspan(span->begin, span->end - span->begin)).find(answer),
              std::string::npos)
        << text;
    EXPECT_EQ(decoded(tok, all.subspan(span->begin + 1, span->end - span->begin - 1)).find(answer),
              std::string::npos)
        << text;
    EXPECT_EQ(decoded(tok, all.subspan(span->begin, span->end - span->begin - 1)).find(answer),
              std::string::npos)
        << text;
    EXPECT_LT(span->end, tokens.size()) << text;  // not the stop token
  }
  const std::vector<int32_t> ids = tok.encode("no number");
  EXPECT_FALSE(extracted_answer_span(tok, std::vector<int64_t>(ids.begin(), ids.end()), "no number",
                                     last_number));
  // Bytes past the tokens' decoding overlap no token.
  EXPECT_FALSE(tokens_in_bytes(tok, std::vector<int64_t>(ids.begin(), ids.end()), 20, 25));
}

TEST_F(AdaptiveModel, UncertainAnswersClimbTheBudgetsInOrder) {
  const model::Model m(config(), 5);
  AdaptiveConfig cfg;
  cfg.budgets = {2, 4, 7};
  cfg.answer_tokens = 3;
  const auto outcomes = answer_adaptive(m, problems(), cfg.budgets, setup(cfg));
  ASSERT_EQ(outcomes.size(), 2u);
  for (const AdaptiveOutcome& o : outcomes) {
    ASSERT_EQ(o.passes.size(), 3u);
    EXPECT_EQ(o.passes[0].budget, 2);
    EXPECT_EQ(o.passes[1].budget, 4);
    EXPECT_EQ(o.passes[2].budget, 7);
    EXPECT_EQ(o.passes[0].next, Expansion::kContinue);
    EXPECT_EQ(o.passes[2].next, Expansion::kStop);
    // The reasoning (the <think> token and 7 more) ends at the largest budget.
    EXPECT_EQ(reasoning_length(o.response), 1 + 7);
    // Continuing pays each token once: 8 of reasoning, </think> and 3 answer
    // tokens in the last pass, the forced </think> and answer tokens of the
    // first two passes.
    EXPECT_EQ(o.tokens, 8 + 2 * (1 + 3) + (1 + 3));
    EXPECT_FALSE(o.correct);
  }
  // A threshold nothing reaches keeps the first answer.
  cfg.logprob_threshold = -kInf;
  for (const AdaptiveOutcome& o : answer_adaptive(m, problems(), cfg.budgets, setup(cfg))) {
    EXPECT_EQ(o.passes.size(), 1u);
    EXPECT_EQ(reasoning_length(o.response), 1 + 2);
  }
}

TEST_F(AdaptiveModel, ContinuingGivesTheRerunsAnswerForFewerTokens) {
  const model::Model m(config(), 6);
  AdaptiveConfig cfg;
  cfg.budgets = {3, 6};
  cfg.answer_tokens = 3;
  const auto continued = answer_adaptive(m, problems(), cfg.budgets, setup(cfg));
  cfg.expand = "rerun";
  const auto rerun = answer_adaptive(m, problems(), cfg.budgets, setup(cfg));
  const std::array<int64_t, 1> largest = {6};
  const auto fixed = answer_adaptive(m, problems(), largest, setup(cfg));
  for (size_t p = 0; p < continued.size(); ++p) {
    // Greedy decoding of the same prompt: the cut reasoning continued is the
    // reasoning a larger budget would have produced.
    EXPECT_EQ(continued[p].response.tokens, rerun[p].response.tokens);
    EXPECT_EQ(continued[p].response.tokens, fixed[p].response.tokens);
    EXPECT_EQ(rerun[p].passes.size(), 2u);
    EXPECT_EQ(fixed[p].passes.size(), 1u);
    // The rerun pays the first pass again.
    EXPECT_EQ(continued[p].tokens, fixed[p].tokens + (1 + 3));
    EXPECT_EQ(rerun[p].tokens, fixed[p].tokens + (1 + 3) + (1 + 3));
  }
}

// Without reasoning markers a budget caps the whole response, and a response
// cut by it has no final answer yet.
TEST_F(AdaptiveModel, WithoutMarkersTheBudgetCapsTheWholeResponse) {
  const model::Model m(config(), 5);
  AdaptiveConfig cfg;
  cfg.budgets = {2, 4, 7};
  const auto outcomes = answer_adaptive(m, problems(), cfg.budgets, plain_setup(cfg));
  ASSERT_EQ(outcomes.size(), 2u);
  for (const AdaptiveOutcome& o : outcomes) {
    ASSERT_EQ(o.passes.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(o.passes[i].budget, cfg.budgets[i]);
      EXPECT_EQ(o.passes[i].uncertainty, kInf);
    }
    EXPECT_EQ(o.passes[0].next, Expansion::kContinue);
    EXPECT_EQ(o.passes[2].next, Expansion::kStop);
    // Continuing writes each token once; all of them are counted as reasoning.
    EXPECT_EQ(o.response.tokens.size(), 7u);
    EXPECT_TRUE(o.response.truncated);
    EXPECT_EQ(o.tokens, 7);
    EXPECT_EQ(o.think_tokens, 7);
  }
}

TEST_F(AdaptiveModel, WithoutMarkersContinuingGivesTheLargerBudgetsTokens) {
  const model::Model m(config(), 6);
  AdaptiveConfig cfg;
  cfg.budgets = {3, 6};
  const auto continued = answer_adaptive(m, problems(), cfg.budgets, plain_setup(cfg));
  cfg.expand = "rerun";
  const auto rerun = answer_adaptive(m, problems(), cfg.budgets, plain_setup(cfg));
  const std::array<int64_t, 1> largest = {6};
  const auto fixed = answer_adaptive(m, problems(), largest, plain_setup(cfg));
  for (size_t p = 0; p < continued.size(); ++p) {
    // Greedy decoding: the cut response continued is the one a larger
    // budget gives, for no extra token; the rerun pays the first pass again.
    EXPECT_EQ(continued[p].response.tokens, fixed[p].response.tokens);
    EXPECT_EQ(rerun[p].response.tokens, fixed[p].response.tokens);
    EXPECT_EQ(continued[p].passes.size(), 2u);
    EXPECT_EQ(continued[p].tokens, fixed[p].tokens);
    EXPECT_EQ(continued[p].think_tokens, fixed[p].think_tokens);
    EXPECT_EQ(rerun[p].tokens, fixed[p].tokens + 3);
    EXPECT_EQ(rerun[p].think_tokens, fixed[p].think_tokens + 3);
  }
}

TEST_F(AdaptiveModel, RecordsNameEveryBudgetAndTheAdaptiveRun) {
  const model::Model m(config(), 7);
  AdaptiveConfig cfg;
  cfg.budgets = {2, 5};
  cfg.answer_tokens = 2;
  comm::SoloCommunicator solo;
  const auto records = evaluate_adaptive(m, problems(), setup(cfg), 3, solo);
  ASSERT_EQ(records.size(), 3u);
  const auto name = [](const telemetry::Record& r) {
    return std::get<std::string>(*r.find("eval"));
  };
  EXPECT_EQ(name(records[0]), "fixed_budget@2");
  EXPECT_EQ(name(records[1]), "fixed_budget@5");
  EXPECT_EQ(name(records[2]), "adaptive");
  for (const telemetry::Record& r : records)
    for (const char* key : {"accuracy", "think_tokens_mean", "expanded_fraction"})
      EXPECT_NE(r.find(key), nullptr) << name(r) << " " << key;
  EXPECT_DOUBLE_EQ(std::get<double>(*records[0].find("expanded_fraction")), 0);
  EXPECT_DOUBLE_EQ(std::get<double>(*records[2].find("expanded_fraction")), 1);
  EXPECT_DOUBLE_EQ(std::get<double>(*records[2].find("passes_mean")), 2);
}

}  // namespace
}  // namespace muse::inference
