// Byte-level BPE tokenizer: trained here, or loaded from and saved to a
// Hugging Face `tokenizer.json` (GPT-2 and Llama-3 style byte-level BPE), so a
// vocabulary travels with exported checkpoints and loads in `tokenizers`.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "data/chat_template.h"
#include "data/token_roles.h"

namespace muse::data {

// A tokenizer file that cannot be read, or a bad training request; what()
// names the file (and the JSON path or line) at fault.
class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The special tokens a tokenizer muse-data trains holds, in the id order
// training assigns them: ids 0..7, before the 256 byte tokens (8..263) and
// the merges (264..). Their roles are TokenRolesConfig's defaults; a loaded
// tokenizer.json need not have them (token_roles.h).
inline constexpr std::string_view kBeginOfText = "<|begin_of_text|>";
inline constexpr std::string_view kEndOfText = "<|end_of_text|>";
inline constexpr std::string_view kPad = "<|pad|>";
inline constexpr std::string_view kImage = "<image>";
inline constexpr std::string_view kThinkBegin = "<think>";
inline constexpr std::string_view kThinkEnd = "</think>";
inline constexpr std::string_view kAnswerBegin = "<answer>";
inline constexpr std::string_view kAnswerEnd = "</answer>";
inline constexpr std::string_view kSpecialTokens[] = {
    kBeginOfText, kEndOfText, kPad, kImage, kThinkBegin, kThinkEnd, kAnswerBegin, kAnswerEnd};

// Which pre-tokenizer splits text into words before BPE merges.
enum class Pretokenizer { kGpt2, kLlama3 };

struct TrainOptions {
  int64_t vocab_size = 4096;  // including the 256 byte tokens and the special tokens
  Pretokenizer pretokenizer = Pretokenizer::kLlama3;
  int64_t min_pair_count = 2;  // stop merging when the best pair is rarer than this
};

class Tokenizer {
 public:
  // Learns merges from the UTF-8 text of `files` (each read whole).
  static Tokenizer train(const std::vector<std::string>& files, const TrainOptions& options);
  // Learns merges from texts in memory.
  static Tokenizer train_from_texts(const std::vector<std::string>& texts,
                                    const TrainOptions& options);
  // Reads a Hugging Face tokenizer.json with a byte-level BPE model, and the
  // roles of its tokens from `roles` and the files beside it.
  static Tokenizer load(const std::string& path, const TokenRolesConfig& roles = {});
  // Writes tokenizer.json (atomically) in the format `tokenizers` loads.
  void save(const std::string& path) const;

  // Token ids of `text`. With `parse_special`, the special tokens' texts
  // become their ids; otherwise they are encoded as ordinary text. No BOS or
  // EOS is added (a tokenizer.json's post_processor is not applied). A
  // tokenizer.json's NFC normalizer applies first, as in `tokenizers`.
  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const;
  // The bytes the ids stand for: decode(encode(x)) == x for any bytes x
  // (with an NFC normalizer, x in NFC).
  // Throws TokenizerError for an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids) const;

  int64_t vocab_size() const;
  // llama.cpp's name of the pre-tokenizer (GGUF tokenizer.ggml.pre:
  // "llama-bpe", "qwen2", "gpt-2"); empty when llama.cpp has none that splits
  // text the same way.
  std::string llama_cpp_pre_tokenizer() const;
  // The id of a special (or any) token's text, if the vocabulary has it.
  // Ordinary tokens are spelled as in tokenizer.json ("Ġthe" for " the").
  std::optional<int32_t> token_id(std::string_view token) const;
  // The id of a token that must be there; throws TokenizerError naming it
  // when the vocabulary lacks it.
  int32_t special_id(std::string_view token) const;
  // The ids tokenizer.json's post-processor puts before a text (what
  // transformers' tokenizer(text) adds first: Llama 3's <|begin_of_text|>).
  std::vector<int32_t> leading_special_tokens() const;
  // Whether tokenizer.json has a post-processor (muse-data's have none).
  bool has_post_processor() const;
  // What the tokens are used for (token_roles.h).
  const TokenRoles& roles() const;

  // From now on prompts are the user turn of `chat` (with `system` before it
  // when not empty), rendered with the generation prompt (encode_prompt).
  void use_chat(ChatTemplate chat, std::string system);
  bool has_chat() const;
  // The text of `prompt` as the chat template presents it; throws
  // ChatTemplateError naming the template.
  std::string render_chat_prompt(std::string_view prompt) const;

  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  // A trained tokenizer's roles: muse-train's special tokens.
  static Tokenizer with_default_roles(Tokenizer tokenizer);
  std::unique_ptr<Impl> impl_;
};

}  // namespace muse::data
