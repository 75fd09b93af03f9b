// The tokens muse-train gives a role: what starts a prompt, what ends a
// response, the image placeholder, and the reasoning and answer markers.
//
// A checkpoint's tokenizer is used as it is: the roles come from the files
// transformers saves beside tokenizer.json (tokenizer_config.json,
// generation_config.json) unless the config names them (`data.tokens.*`).
// A role is required only where it is used: a text-only model needs no image
// token, a model without reasoning markers is counted on its whole response.
// Markers may be ordinary multi-token text (`<think>` in R1-distilled Qwen is
// one token, in SmolLM2 three).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/schema.h"

namespace muse::data {

class Tokenizer;

struct TokenRolesConfig {
  std::string bos = "auto";
  std::string eos = "auto";
  std::string image = "<image>";
  std::string think_begin = "<think>";
  std::string think_end = "</think>";
  std::string answer_begin = "<answer>";
  std::string answer_end = "</answer>";

  template <class V>
  void visit(V& v) {
    v.field("bos", bos,
            {.help = "the token before every plain prompt and document: auto (what transformers' "
                     "tokenizer(text) puts first, from tokenizer.json's post-processor; "
                     "<|begin_of_text|> for muse-data's tokenizers), empty for none, or a "
                     "token's text"});
    v.field(
        "eos", eos,
        {.help = "the token that ends a document or a response: auto (tokenizer_config.json's "
                 "eos_token, generation also stopping at generation_config.json's "
                 "eos_token_id; <|end_of_text|> for muse-data's tokenizers) or a token's text"});
    v.field("image", image,
            {.help = "the image placeholder token; needed only by prompts and documents with "
                     "images"});
    v.field("think_begin", think_begin,
            {.help = "text that opens the reasoning (any number of tokens); empty when the model "
                     "has no reasoning markers: reasoning length is then the whole response"});
    v.field("think_end", think_end, {.help = "text that closes the reasoning"});
    v.field("answer_begin", answer_begin,
            {.help = "text that opens the final answer (adaptive inference's answer span)"});
    v.field("answer_end", answer_end, {.help = "text that closes the final answer"});
  }
};

// A role's text and its ids; `ids` is empty when the role is unset.
struct TokenMarker {
  std::string text;
  std::vector<int32_t> ids;
};

class TokenRoles {
 public:
  std::string origin;         // the tokenizer.json the roles were read for (errors name it)
  std::vector<int32_t> bos;   // before every plain prompt; empty: none
  std::vector<int32_t> stop;  // generation stops at any; stop.front() is the end token
  std::optional<int32_t> pad;
  std::optional<int32_t> image;
  std::string image_text;  // what the config names (errors quote it)
  // What a chat template sees as bos_token and eos_token (tokenizer_config.json's).
  std::string template_bos, template_eos;
  TokenMarker think_begin, think_end, answer_begin, answer_end;

  // The token that ends documents and SFT responses; throws TokenizerError
  // naming data.tokens.eos when the tokenizer has none.
  int32_t end() const;
  // Generation's stop tokens (the end token first).
  std::vector<int64_t> stop_tokens() const;
  // The image placeholder; throws TokenizerError naming data.tokens.image.
  int32_t image_id() const;
  // The padding id of shards: the pad token, else the end token.
  int32_t pad_id() const;
  // A marker that must be one token (forced or located by id); throws
  // TokenizerError naming `key` when it is empty or several tokens.
  static int32_t single(const TokenMarker& marker, std::string_view key);
};

// Reads the roles of `tokenizer` (loaded from `path`, which may be empty for
// a tokenizer trained in memory) from the config and the files beside it.
// Throws TokenizerError naming the key when a token the config names
// explicitly is not in the vocabulary.
TokenRoles resolve_token_roles(const Tokenizer& tokenizer, const std::string& path,
                               const TokenRolesConfig& config);

// Reasoning tokens of a response: those inside the reasoning markers (from
// after think_begin up to think_end or the end), or from the start when the
// prompt itself opened the reasoning (R1-distilled chat templates end with
// `<think>`); the whole response for a model with no markers. Markers are
// found in the decoded text, so a multi-token marker counts however the
// model spelled it.
int64_t count_reasoning_tokens(const Tokenizer& tokenizer, std::span<const int64_t> response,
                               bool opened_by_prompt);
// Whether a prompt's text leaves the reasoning open (its last think_begin
// comes after its last think_end).
bool prompt_opens_reasoning(const Tokenizer& tokenizer, std::string_view prompt_text);
// The tokens of a response after its last think_end (none without one; all
// of them for a model with no markers): the answer a candidate view shows.
std::vector<int64_t> tokens_after_reasoning(const Tokenizer& tokenizer,
                                            std::span<const int64_t> response);

}  // namespace muse::data
