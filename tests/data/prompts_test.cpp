// Supervised examples and prompt sets: the builder's prompt/response mode
// writes the documents and loss starts of encode_example, the loader then
// counts only the response, and load_prompts gives the exact tokens (images
// expanded) that the examples trained the prompt as.
#include "data/prompts.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "data/data_error.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/shard_builder.h"
#include "tests/data/image_files.h"
#include "tests/temp_dir.h"

namespace {

namespace data = muse::data;
namespace fs = std::filesystem;
using muse::testing::TempDir;

std::string data_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const data::DataError& e) {
    return e.what();
  }
  return "(no error)";
}

class Prompts : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    data::TrainOptions options;
    options.vocab_size = 300;
    tokenizer_ = new data::Tokenizer(data::Tokenizer::train_from_texts(
        {"What is the sum of these digits? <image> <image> <think>3 plus 4 is 7</think>",
         "<image> the digit seven", "<image> the digit three", "the digit four"},
        options));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }

  // Two 8x8 grayscale digits, a.png (all 10) and b.png (all 200), beside the JSONL files.
  void SetUp() override {
    fs::create_directories(dir_.path() / "digits");
    muse::testing::write_png(dir_.path() / "digits/a.png", {8, 8, 1, std::vector<uint8_t>(64, 10)});
    muse::testing::write_png(dir_.path() / "digits/b.png",
                             {8, 8, 1, std::vector<uint8_t>(64, 200)});
  }

  const data::Tokenizer& tok() const { return *tokenizer_; }
  int32_t id(std::string_view special) const { return tok().special_id(special); }

  static data::Tokenizer* tokenizer_;
  TempDir dir_;
};

data::Tokenizer* Prompts::tokenizer_ = nullptr;

constexpr const char* kRecords =
    R"({"prompt": "What is the sum of these digits? <image> <image>", "solution": "<think>3 plus 4 is 7</think>", "images": ["digits/a.png", "digits/b.png"], "answer": "7"}
{"prompt": "<image> the digit", "solution": " seven", "images": ["digits/b.png"], "answer": "seven"}

{"prompt": "the digit", "solution": " four", "answer": "four"}
)";

TEST_F(Prompts, AnExampleIsThePromptThenTheResponseEncodedApart) {
  const auto prompt = data::encode_prompt(tok(), "<image> the digit");
  ASSERT_GE(prompt.size(), 3u);
  EXPECT_EQ(prompt[0], id(data::kBeginOfText));
  EXPECT_EQ(prompt[1], id(data::kImage));
  const data::Example e = data::encode_example(tok(), "<image> the digit", " seven");
  EXPECT_EQ(e.loss_start, static_cast<int64_t>(prompt.size()));
  EXPECT_EQ(std::vector<int32_t>(e.tokens.begin(), e.tokens.begin() + e.loss_start), prompt);
  EXPECT_EQ(e.tokens.back(), id(data::kEndOfText));
  EXPECT_EQ(tok().decode(std::span(e.tokens).subspan(1)), "<image> the digit seven<|end_of_text|>");
  EXPECT_EQ(data::expand_image_tokens(std::vector<int32_t>{0, 3, 9, 3}, 3, 2),
            (std::vector<int64_t>{0, 3, 3, 9, 3, 3}));
}

TEST_F(Prompts, TheBuilderWritesExamplesAndTheLoaderCountsOnlyTheResponse) {
  const std::string jsonl = dir_.write("sft.jsonl", kRecords);
  data::BuildOptions o;
  o.inputs = {jsonl};
  o.out_dir = dir_.path() / "shards";
  o.image_size = 4;
  o.image_channels = 1;
  o.prompt_key = "prompt";
  o.response_key = "solution";
  const auto counts = data::build_shards(o, tok(), [](const data::BuildCounts&) {});
  ASSERT_EQ(counts.shards, 1);
  EXPECT_EQ(counts.documents, 3);
  EXPECT_EQ(counts.images, 3);

  const data::Shard s = data::read_shard(counts.shard_paths[0]);
  const std::pair<const char*, const char*> examples[] = {
      {"What is the sum of these digits? <image> <image>", "<think>3 plus 4 is 7</think>"},
      {"<image> the digit", " seven"},
      {"the digit", " four"}};
  std::vector<int32_t> tokens;
  std::vector<int64_t> loss_starts;
  for (const auto& [prompt, response] : examples) {
    const data::Example e = data::encode_example(tok(), prompt, response);
    tokens.insert(tokens.end(), e.tokens.begin(), e.tokens.end());
    loss_starts.push_back(e.loss_start);
  }
  EXPECT_EQ(s.tokens, tokens);
  EXPECT_EQ(s.loss_starts, loss_starts);
  std::vector<uint8_t> pixels(3 * 16, 200);  // (3, 4, 4, 1): a.png, b.png, b.png
  std::fill(pixels.begin(), pixels.begin() + 16, 10);
  EXPECT_EQ(s.images, pixels);

  // The first example in the first row, P = 2: exactly its response tokens
  // and the EOS are targets.
  data::LoaderOptions lo;
  lo.shards = counts.shard_paths;
  lo.seq_len = 128;
  lo.batch_size = 1;
  lo.shuffle = false;
  lo.image_tokens = 2;
  data::Loader loader(lo, 0, 1, 1);
  const data::Batch b = loader.next();
  const auto targets = b.targets[0];
  const auto counted = targets.ne(data::kIgnoreIndex);
  const auto expected_first = data::encode_example(tok(), examples[0].first, examples[0].second);
  const auto response = std::vector<int64_t>(
      expected_first.tokens.begin() + expected_first.loss_start, expected_first.tokens.end());
  // Example 0 expands its two images by one position each.
  const int64_t first_target =
      expected_first.loss_start + 2 - 1;  // predicts the first response token
  const auto first = targets.narrow(0, first_target, static_cast<int64_t>(response.size()));
  EXPECT_EQ(
      std::vector<int64_t>(first.data_ptr<int64_t>(), first.data_ptr<int64_t>() + first.numel()),
      response);
  EXPECT_FALSE(counted.narrow(0, 0, first_target).any().item<bool>());
  EXPECT_EQ(targets[first_target + static_cast<int64_t>(response.size())].item<int64_t>(),
            data::kIgnoreIndex);  // the EOS predicts nothing
}

TEST_F(Prompts, TheBuilderNamesTheFileLineAndKeyOfABadExample) {
  const std::string jsonl = dir_.write(
      "bad.jsonl", std::string(kRecords) + R"({"prompt": "<image>", "images": ["digits/a.png"]})"
                                           "\n");
  data::BuildOptions o;
  o.inputs = {jsonl};
  o.out_dir = dir_.path() / "shards";
  o.shard_tokens = 1;  // a shard per example: those written must go again
  o.prompt_key = "prompt";
  o.response_key = "solution";
  EXPECT_EQ(data_error([&] { data::build_shards(o, tok(), [](const data::BuildCounts&) {}); }),
            jsonl + ":5: missing \"solution\"");
  EXPECT_TRUE(fs::is_empty(o.out_dir));
  o.response_key.clear();
  EXPECT_THROW(data::build_shards(o, tok(), [](const data::BuildCounts&) {}),
               std::invalid_argument);
}

TEST_F(Prompts, LoadsPromptsWithImagesExpandedAsTheLoaderExpandsThem) {
  const std::string jsonl = dir_.write("heldout.jsonl", kRecords);
  data::PromptOptions o;
  o.image_tokens = 3;
  o.image_size = 2;
  o.image_channels = 3;
  const auto records = data::load_prompts(jsonl, tok(), o);
  ASSERT_EQ(records.size(), 3u);

  const auto& r = records[1];
  EXPECT_EQ(r.prompt, "<image> the digit");
  EXPECT_EQ(r.answer, "seven");
  const auto stored = data::encode_prompt(tok(), r.prompt);
  EXPECT_EQ(r.tokens, data::expand_image_tokens(stored, id(data::kImage), 3));
  EXPECT_EQ(static_cast<int64_t>(r.tokens.size()), static_cast<int64_t>(stored.size()) + 2);
  ASSERT_TRUE(r.images.defined());
  EXPECT_EQ(r.images.sizes(), (std::vector<int64_t>{1, 2, 2, 3}));
  EXPECT_EQ(r.images.scalar_type(), at::kByte);
  EXPECT_TRUE(r.images.eq(200).all().item<bool>());

  EXPECT_EQ(records[0].images.size(0), 2);
  EXPECT_EQ(records[0].images[0][0][0][0].item<int64_t>(), 10);
  EXPECT_EQ(records[0].images[1][0][0][0].item<int64_t>(), 200);
  EXPECT_FALSE(records[2].images.defined());
  EXPECT_EQ(records[2].answer, "four");

  // The tokens SFT trained each prompt as, expanded as the Loader expands them.
  for (size_t i = 0; i < records.size(); ++i) {
    const auto e = data::encode_example(tok(), records[i].prompt, "x");
    EXPECT_EQ(records[i].tokens, data::expand_image_tokens(
                                     std::span(e.tokens).first(static_cast<size_t>(e.loss_start)),
                                     id(data::kImage), 3));
  }
}

TEST_F(Prompts, OtherKeysNameTheirFields) {
  const std::string jsonl = dir_.write(
      "q.jsonl",
      R"({"question": "<image> the digit", "label": "three", "images": ["digits/a.png"]})"
      "\n");
  data::PromptOptions o;
  o.prompt_key = "question";
  o.answer_key = "label";
  const auto records = data::load_prompts(jsonl, tok(), o);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].answer, "three");
  EXPECT_EQ(records[0].images.sizes(), (std::vector<int64_t>{1, 32, 32, 3}));  // the defaults
}

TEST_F(Prompts, BadPromptSetsAreErrorsNamingFileAndLine) {
  const data::PromptOptions o;
  const auto error_for = [&](const std::string& lines) {
    const std::string jsonl = dir_.write("p.jsonl", lines);
    return data_error([&] { data::load_prompts(jsonl, tok(), o); });
  };
  const std::string path = (dir_.path() / "p.jsonl").string();
  const std::string good = R"({"prompt": "the digit", "answer": "four"})"
                           "\n";
  EXPECT_EQ(error_for(good + R"({"prompt": "the digit"})"), path + ":2: missing \"answer\"");
  EXPECT_EQ(error_for(good + "\n" + R"({"prompt": "<image>", "answer": "1"})"),
            path + ":3: \"prompt\" has 1 <image> marker(s) but \"images\" lists 0 image(s)");
  EXPECT_EQ(error_for(R"({"prompt": "<image>", "answer": "1", "images": ["digits/c.png"]})"),
            path + ":1: image '" + (dir_.path() / "digits/c.png").string() + "' not found");
  EXPECT_EQ(error_for(R"({"prompt": "x", "answer": 1})"),
            path + ":1: \"answer\" must be a string, got number");
  EXPECT_EQ(error_for("{\n").rfind(path + ":1: malformed JSON: column ", 0), 0);
  EXPECT_EQ(error_for("\n \n"), path + ": no records");
  EXPECT_EQ(data_error([&] { data::load_prompts(dir_.path() / "absent.jsonl", tok(), o); }),
            (dir_.path() / "absent.jsonl").string() + ": cannot open");
  data::PromptOptions bad;
  bad.image_channels = 2;
  EXPECT_THROW(data::load_prompts(path, tok(), bad), std::invalid_argument);
}

}  // namespace
