// Tests of data/token_roles.h: where each role comes from (the config, the
// files beside tokenizer.json, muse-data's defaults), the errors that name a
// key, and reasoning counted by single- and multi-token markers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "data/prompts.h"
#include "data/tokenizer.h"
#include "tests/temp_dir.h"

namespace muse::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

// muse-data's special tokens are ids 0..7: <|begin_of_text|> 0,
// <|end_of_text|> 1, <|pad|> 2, <image> 3, <think> 4, </think> 5,
// <answer> 6, </answer> 7; the bytes follow (8 + byte).
const Tokenizer& trained() {
  static const Tokenizer t = Tokenizer::train_from_texts({"ab ab abc abc"}, {.vocab_size = 270});
  return t;
}
int64_t byte_id(char c) {
  return 8 + static_cast<unsigned char>(c);
}
std::vector<int64_t> ids(const Tokenizer& t, const std::string& text) {
  const std::vector<int32_t> v = t.encode(text);
  return {v.begin(), v.end()};
}

class TokenRolesFiles : public ::testing::Test {
 protected:
  // The trained tokenizer saved with `post_processor`, and the given
  // tokenizer_config.json and generation_config.json (null: absent).
  std::string save(const json& post_processor, const json& tokenizer_config = nullptr,
                   const json& generation_config = nullptr) const {
    const std::string path = (dir_.path() / "tokenizer.json").string();
    trained().save(path);
    json file = json::parse(std::ifstream(path));
    file["post_processor"] = post_processor;
    std::ofstream(path) << file.dump();
    if (!tokenizer_config.is_null())
      std::ofstream(dir_.path() / "tokenizer_config.json") << tokenizer_config.dump();
    if (!generation_config.is_null())
      std::ofstream(dir_.path() / "generation_config.json") << generation_config.dump();
    return path;
  }
  static json template_processing(const std::vector<std::string>& before) {
    json single = json::array(), special = json::object();
    for (const std::string& token : before) {
      single.push_back({{"SpecialToken", {{"id", token}, {"type_id", 0}}}});
      special[token] = {{"id", token}, {"ids", {trained().special_id(token)}}, {"tokens", {token}}};
    }
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    return {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", special}};
  }
  testing::TempDir dir_;
};

TEST(TokenRoles, TrainedTokenizersUseMuseSpecialTokens) {
  const TokenRoles& r = trained().roles();
  EXPECT_THAT(r.bos, ElementsAre(0));
  EXPECT_EQ(r.end(), 1);
  EXPECT_THAT(r.stop_tokens(), ElementsAre(1));
  EXPECT_EQ(r.pad_id(), 2);
  EXPECT_EQ(r.image_id(), 3);
  EXPECT_THAT(r.think_begin.ids, ElementsAre(4));
  EXPECT_THAT(r.answer_end.ids, ElementsAre(7));
  EXPECT_EQ(encode_prompt(trained(), "ab").front(), 0);
}

TEST_F(TokenRolesFiles, BosIsWhatThePostProcessorPutsFirst) {
  // Llama 3: a TemplateProcessing that starts with <|begin_of_text|>.
  EXPECT_THAT(Tokenizer::load(save(template_processing({"<|begin_of_text|>"}))).roles().bos,
              ElementsAre(0));
  // SmolLM2: a TemplateProcessing with nothing before the text.
  EXPECT_TRUE(Tokenizer::load(save(template_processing({}))).roles().bos.empty());
  // Qwen2: a ByteLevel post-processor, no BOS; Llama 3's Sequence form.
  EXPECT_TRUE(Tokenizer::load(save({{"type", "ByteLevel"}})).roles().bos.empty());
  const json sequence = {
      {"type", "Sequence"},
      {"processors", {{{"type", "ByteLevel"}}, template_processing({"<|begin_of_text|>"})}}};
  EXPECT_THAT(Tokenizer::load(save(sequence)).roles().bos, ElementsAre(0));
  // The config overrides: none, or a named token.
  EXPECT_TRUE(Tokenizer::load(save(nullptr), {.bos = ""}).roles().bos.empty());
  EXPECT_THAT(Tokenizer::load(save(nullptr), {.bos = "<answer>"}).roles().bos, ElementsAre(6));
}

TEST_F(TokenRolesFiles, EndAndStopComeFromTheConfigFiles) {
  const std::string path = save(template_processing({}), {{"eos_token", "<answer>"}},
                                {{"eos_token_id", json::array({7, 6, 1})}});
  const Tokenizer t = Tokenizer::load(path);
  const TokenRoles& r = t.roles();
  EXPECT_EQ(r.end(), 6);  // tokenizer_config.json's eos_token ends responses
  EXPECT_THAT(r.stop_tokens(), ElementsAre(6, 7, 1));
  EXPECT_EQ(r.template_eos, "<answer>");
  // eos_token may be an object, as older transformers saved it.
  const std::string object =
      save(nullptr, {{"eos_token", {{"content", "</answer>"}}}, {"pad_token", "<think>"}});
  EXPECT_EQ(Tokenizer::load(object).roles().end(), 7);
  EXPECT_EQ(Tokenizer::load(object).roles().pad_id(), 4);
  EXPECT_THAT(Tokenizer::load(path, {.eos = "<think>"}).roles().stop_tokens(), ElementsAre(4));
}

TEST_F(TokenRolesFiles, ANamedTokenTheTokenizerLacksIsAnErrorNamingTheKey) {
  const std::string path = save(nullptr);
  for (const auto& [config, key] :
       {std::pair{TokenRolesConfig{.bos = "<s>"}, "data.tokens.bos"},
        std::pair{TokenRolesConfig{.eos = "</s>"}, "data.tokens.eos"}}) {
    try {
      Tokenizer::load(path, config);
      ADD_FAILURE() << key;
    } catch (const TokenizerError& e) {
      EXPECT_THAT(e.what(), HasSubstr(std::string(key) + ": " + path + " has no token"));
    }
  }
  // A tokenizer_config.json that names a token the vocabulary lacks.
  EXPECT_THAT(
      [&] {
        (void)Tokenizer::load(save(nullptr, {{"eos_token", "</s>"}}));
      },
      ::testing::ThrowsMessage<TokenizerError>(
          HasSubstr("tokenizer_config.json beside " + path + " names eos_token '</s>'")));
}

TEST_F(TokenRolesFiles, AnImageTokenIsNeededOnlyWhereUsed) {
  const Tokenizer t = Tokenizer::load(save(nullptr), {.image = "<img>"});
  EXPECT_FALSE(t.roles().image.has_value());
  EXPECT_THAT([&] { (void)t.roles().image_id(); },
              ::testing::ThrowsMessage<TokenizerError>(HasSubstr("data.tokens.image")));
  // A text prompt needs none; one with an image does.
  EXPECT_NO_THROW(make_prompt(t, "ab", "", {}, ".", {}));
  EXPECT_THROW(make_prompt(t, "<img> ab", "", {"x.png"}, ".", {}), TokenizerError);
}

TEST(ReasoningTokens, SingleTokenMarkersCountInsideTheFirstBlock) {
  const Tokenizer& t = trained();
  const int64_t a = byte_id('a'), b = byte_id('b'), c = byte_id('c');
  const auto count = [&](std::vector<int64_t> r) { return count_reasoning_tokens(t, r, false); };
  EXPECT_EQ(count({c, 4, a, b, c, 5, a}), 3);
  EXPECT_EQ(count({4, 5, a}), 0);
  EXPECT_EQ(count({4, a, 5, b, 5}), 1);     // the first </think> closes
  EXPECT_EQ(count({5, 4, a, 5}), 1);        // a </think> before <think> is ignored
  EXPECT_EQ(count({4, a, b}), 2);           // unclosed: everything after <think>
  EXPECT_EQ(count({4, a, 4, 5, 4, c}), 2);  // a second <think> inside counts as content
  EXPECT_EQ(count({a, b, 5}), 0);           // no <think>
  EXPECT_EQ(count({}), 0);
  // A prompt that opened the reasoning (R1 templates end with <think>).
  EXPECT_EQ(count_reasoning_tokens(t, std::vector<int64_t>{a, b, 5, c}, true), 2);
  EXPECT_TRUE(prompt_opens_reasoning(t, "<|begin_of_text|>q<think>\n"));
  EXPECT_FALSE(prompt_opens_reasoning(t, "q<think></think>"));
  EXPECT_FALSE(prompt_opens_reasoning(t, "q"));
}

TEST_F(TokenRolesFiles, MultiTokenMarkersAreFoundInTheText) {
  const Tokenizer t = Tokenizer::load(save(nullptr), {.think_begin = "[[", .think_end = "]]"});
  EXPECT_GT(t.roles().think_begin.ids.size(), 1u);
  const std::vector<int64_t> response = ids(t, "c[[abc]]ab");
  EXPECT_EQ(count_reasoning_tokens(t, response, false), static_cast<int64_t>(ids(t, "abc").size()));
  EXPECT_EQ(tokens_after_reasoning(t, response), ids(t, "ab"));
  EXPECT_TRUE(tokens_after_reasoning(t, ids(t, "[[abc")).empty());
  EXPECT_THAT([&] { (void)TokenRoles::single(t.roles().think_end, "think_end"); },
              ::testing::ThrowsMessage<TokenizerError>(HasSubstr("data.tokens.think_end")));
}

TEST_F(TokenRolesFiles, WithoutMarkersTheWholeResponseIsReasoning) {
  const Tokenizer t = Tokenizer::load(save(nullptr), {.think_begin = "", .think_end = ""});
  const std::vector<int64_t> response = ids(t, "abc abc");
  EXPECT_EQ(count_reasoning_tokens(t, response, false), static_cast<int64_t>(response.size()));
  EXPECT_EQ(tokens_after_reasoning(t, response), response);
}

}  // namespace
}  // namespace muse::data
