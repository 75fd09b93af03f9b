// Prompt sets for evaluation and RL, and the tokenization contract they share
// with supervised fine-tuning (SFT) shards:
//
//   prompt tokens  = BOS + encode(prompt)                          encode_prompt
//   SFT document   = prompt tokens + encode(response) + EOS        encode_example
//
// BOS and EOS are the tokenizer's roles (token_roles.h); BOS may be none.
//                    loss from the first response token on
//
// Prompt and response are encoded separately, never as one string, so no BPE
// merge crosses the boundary: the tokens generation feeds the model are
// exactly those SFT trained it to answer. The response is encoded as given,
// no separator is added: a response that continues prose carries its own
// leading space (" seven" after "<image> the digit"); one that starts with a
// special token ("<think>...") needs none.
//
// Legend: P = image_tokens (placeholder positions per image), N = images of a
// prompt, H = W = image_size, C = image_channels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/data_config.h"
#include "data/tokenizer.h"

namespace muse::data {

// The run's tokenizer: data.tokenizer with the roles data.tokens names and,
// with data.chat, the chat template. Throws TokenizerError or
// ChatTemplateError naming the file.
Tokenizer open_tokenizer(const DataConfig& data);
// open_tokenizer, checked as a run will use it (its end token, a rendered
// prompt): a bad tokenizer, role or chat template becomes a
// config::ConfigError before anything starts.
Tokenizer check_text_format(const DataConfig& data);

// BOS + encode(prompt), or with a chat template the ids of the rendered user
// turn; one stored <image> token per <image> marker.
std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, std::string_view prompt);

// A supervised example as `muse-data build --prompt-key --response-key`
// stores it.
struct Example {
  std::vector<int32_t> tokens;  // encode_prompt(prompt) + encode(response) + EOS
  int64_t loss_start = 0;       // index of the first response token: its prediction counts
};
Example encode_example(const Tokenizer& tokenizer, std::string_view prompt,
                       std::string_view response);

// `tokens` with every `image_token_id` repeated `image_tokens` times, as the
// Loader expands stored <image> tokens.
std::vector<int64_t> expand_image_tokens(std::span<const int32_t> tokens, int32_t image_token_id,
                                         int64_t image_tokens);

struct PromptOptions {
  std::string prompt_key = "prompt";  // the text to generate from; holds the <image> markers
  std::string answer_key = "answer";  // the reference answer a reward or metric checks
  int64_t image_tokens = 1;           // P = (image_size / patch_size)^2 of the model
  int64_t image_size = 32;            // images are area-resized to image_size x image_size
  int64_t image_channels = 3;         // 1 (grayscale) or 3 (RGB)
};

// One prompt, ready for model::Prompt{tokens, images}.
struct PromptRecord {
  // BOS + prompt tokens, each <image> expanded to P placeholders (as the
  // Loader expands them).
  std::vector<int64_t> tokens;
  at::Tensor images;  // (N, H, W, C) uint8, in marker order; undefined when N = 0
  std::string prompt;
  std::string answer;
};

// One prompt from its text (holding one <image> marker per image), reference
// answer and image files (relative to `image_dir` unless absolute), decoded
// and resized as `muse-data build` does. Throws DataError for a marker count
// that does not match or an image that cannot be read;
// std::invalid_argument for impossible options.
PromptRecord make_prompt(const Tokenizer& tokenizer, std::string prompt, std::string answer,
                         const std::vector<std::string>& images,
                         const std::filesystem::path& image_dir, const PromptOptions& opts);

// Reads a JSON Lines prompt set: per non-blank line a record with string
// values under opts.prompt_key and opts.answer_key and optional "images"
// (paths relative to the file's directory, one per <image> marker of the
// prompt), decoded and resized as `muse-data build` does. Throws DataError
// "FILE:LINE: problem" for a bad record and "FILE: ..." for a file that cannot
// be read or holds no record; std::invalid_argument for impossible options.
std::vector<PromptRecord> load_prompts(const std::filesystem::path& jsonl,
                                       const Tokenizer& tokenizer, const PromptOptions& opts);

}  // namespace muse::data
