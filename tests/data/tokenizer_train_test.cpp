// Tests of data/tokenizer.h: training a byte-level BPE vocabulary.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "tests/temp_dir.h"

namespace muse::data {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string train_error(const std::vector<std::string>& files, const TrainOptions& options) {
  try {
    Tokenizer::train(files, options);
  } catch (const TokenizerError& e) {
    return e.what();
  }
  return "(no error)";
}

class TokenizerTrain : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(dir_ / name, std::ios::binary) << content;
    return (dir_ / name).string();
  }

  muse::testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
};

TEST_F(TokenizerTrain, MostFrequentPairFirst) {
  // "ab" 3 times, "cd" twice: (a, b) becomes id 264, then (c, d) 265.
  const Tokenizer tok = Tokenizer::train_from_texts({"ab", "ab", "ab", "cd", "cd"},
                                                    {.vocab_size = 1000, .min_pair_count = 2});
  EXPECT_EQ(tok.token_id("ab"), 264);
  EXPECT_EQ(tok.token_id("cd"), 265);
  EXPECT_EQ(tok.vocab_size(), 266);  // no pair is left twice: min_pair_count stops it
  EXPECT_THAT(tok.encode("abcd"), ElementsAre(264, 265));
}

TEST_F(TokenizerTrain, TiesGoToTheSmallestPair) {
  const Tokenizer tok =
      Tokenizer::train_from_texts({"zw", "xy"}, {.vocab_size = 1000, .min_pair_count = 1});
  EXPECT_EQ(tok.token_id("xy"), 264);
  EXPECT_EQ(tok.token_id("zw"), 265);
}

TEST_F(TokenizerTrain, RepeatedLettersMergeWithoutOverlap) {
  // "aaaa" has three (a, a) pairs but two merges: aa aa, then aaaa.
  const Tokenizer tok =
      Tokenizer::train_from_texts({"aaaa", "aaaa"}, {.vocab_size = 1000, .min_pair_count = 2});
  EXPECT_EQ(tok.token_id("aa"), 264);
  EXPECT_EQ(tok.token_id("aaaa"), 265);
  EXPECT_EQ(tok.vocab_size(), 266);
  EXPECT_THAT(tok.encode("aaaaaaa"), ElementsAre(265, 264, 8 + 'a'));
}

TEST_F(TokenizerTrain, StopsAtTheVocabularySize) {
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += "word" + std::to_string(i) + " and more words ";
  for (const auto pre : {Pretokenizer::kLlama3, Pretokenizer::kGpt2}) {
    const Tokenizer tok =
        Tokenizer::train_from_texts({text}, {.vocab_size = 300, .pretokenizer = pre});
    EXPECT_EQ(tok.vocab_size(), 300);
    EXPECT_EQ(tok.decode(tok.encode(text)), text);
  }
}

TEST_F(TokenizerTrain, SpecialTokensAreNotLearnedFrom) {
  std::vector<std::string> texts(50, "<think>hi</think><|end_of_text|>");
  const Tokenizer tok = Tokenizer::train_from_texts(texts, {.vocab_size = 1000});
  EXPECT_TRUE(tok.token_id("hi").has_value());
  EXPECT_FALSE(tok.token_id("<think").has_value());
  EXPECT_FALSE(tok.token_id("</").has_value());
  EXPECT_FALSE(tok.token_id("<|").has_value());
}

TEST_F(TokenizerTrain, FilesLikeTextsAndDeterministic) {
  const std::vector<std::string> texts = {"the cat sat on the mat, the end\n",
                                          "Größe und Maß: 12345 67890 the cat\n"};
  const std::vector<std::string> files = {write("a.txt", texts[0]), write("b.txt", texts[1])};
  const TrainOptions options{.vocab_size = 300, .min_pair_count = 1};
  Tokenizer::train(files, options).save((dir_ / "files.json").string());
  Tokenizer::train_from_texts(texts, options).save((dir_ / "texts.json").string());
  Tokenizer::train_from_texts(texts, options).save((dir_ / "again.json").string());
  EXPECT_EQ(read(dir_ / "files.json"), read(dir_ / "texts.json"));
  EXPECT_EQ(read(dir_ / "texts.json"), read(dir_ / "again.json"));
}

TEST_F(TokenizerTrain, BadRequests) {
  const std::string file = write("a.txt", "text");
  EXPECT_THAT(train_error({file}, {.vocab_size = 100}),
              AllOf(HasSubstr("vocab_size 100"), HasSubstr("264")));
  EXPECT_THAT(train_error({file}, {.min_pair_count = 0}), HasSubstr("min_pair_count 0"));
  EXPECT_THAT(train_error({}, {}), HasSubstr("no training files"));
  const std::string missing = (dir_ / "missing.txt").string();
  EXPECT_THAT(train_error({file, missing}, {}),
              AllOf(HasSubstr(missing), HasSubstr("cannot open")));
}

}  // namespace
}  // namespace muse::data
