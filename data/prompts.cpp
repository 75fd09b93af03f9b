#include "data/prompts.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "config/schema.h"
#include "data/data_error.h"
#include "data/image.h"
#include "data/jsonl.h"

namespace muse::data {

std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, std::string_view prompt) {
  // The chat template writes any BOS itself.
  if (tokenizer.has_chat()) return tokenizer.encode(tokenizer.render_chat_prompt(prompt));
  std::vector<int32_t> tokens = tokenizer.roles().bos;
  const auto body = tokenizer.encode(prompt);
  tokens.insert(tokens.end(), body.begin(), body.end());
  return tokens;
}

Tokenizer open_tokenizer(const DataConfig& data) {
  Tokenizer tokenizer = Tokenizer::load(data.tokenizer, data.tokens);
  if (!data.chat) return tokenizer;
  std::optional<ChatTemplate> chat;
  if (data.chat_template.empty()) {
    chat = find_chat_template(std::filesystem::path(data.tokenizer).parent_path());
  } else {
    std::ifstream in(data.chat_template, std::ios::binary);
    if (!in) throw ChatTemplateError(data.chat_template + ": cannot open the chat template");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    chat = ChatTemplate::parse(text, data.chat_template);
  }
  if (!chat) {
    throw ChatTemplateError(data.tokenizer +
                            ": no chat template beside it (chat_template.jinja or "
                            "tokenizer_config.json's chat_template); set data.chat_template");
  }
  tokenizer.use_chat(std::move(*chat), data.chat_system);
  return tokenizer;
}

Tokenizer check_text_format(const DataConfig& data) {
  try {
    Tokenizer tokenizer = open_tokenizer(data);
    tokenizer.roles().end();
    if (data.chat) encode_prompt(tokenizer, "What is 1 + 1?");
    return tokenizer;
  } catch (const TokenizerError& e) {
    // A role's error names its own key (data.tokens.eos: ...).
    const std::string what = e.what();
    const size_t colon = what.find(": ");
    if (what.starts_with("data.tokens.") && colon != std::string::npos)
      throw config::ConfigError(what.substr(0, colon), what.substr(colon + 2));
    throw config::ConfigError("data.tokenizer", what);
  } catch (const ChatTemplateError& e) {
    throw config::ConfigError("data.chat_template", e.what());
  }
}

Example encode_example(const Tokenizer& tokenizer, std::string_view prompt,
                       std::string_view response) {
  Example example;
  example.tokens = encode_prompt(tokenizer, prompt);
  example.loss_start = static_cast<int64_t>(example.tokens.size());
  const auto body = tokenizer.encode(response);
  example.tokens.insert(example.tokens.end(), body.begin(), body.end());
  example.tokens.push_back(tokenizer.roles().end());
  return example;
}

std::vector<int64_t> expand_image_tokens(std::span<const int32_t> tokens, int32_t image_token_id,
                                         int64_t image_tokens) {
  std::vector<int64_t> expanded;
  expanded.reserve(tokens.size());
  for (const int32_t t : tokens)
    expanded.insert(expanded.end(), static_cast<size_t>(t == image_token_id ? image_tokens : 1), t);
  return expanded;
}

namespace {
void check_options(const PromptOptions& opts) {
  if (opts.image_tokens < 1 || opts.image_size < 1)
    throw std::invalid_argument("prompt options: image_tokens and image_size must be >= 1");
  if (opts.image_channels != 1 && opts.image_channels != 3)
    throw std::invalid_argument("prompt options: image_channels must be 1 or 3");
}
}  // namespace

PromptRecord make_prompt(const Tokenizer& tokenizer, std::string prompt, std::string answer,
                         const std::vector<std::string>& images,
                         const std::filesystem::path& image_dir, const PromptOptions& opts) {
  check_options(opts);
  const auto S = opts.image_size, C = opts.image_channels;
  const auto stored = encode_prompt(tokenizer, prompt);
  const auto n_images = static_cast<int64_t>(images.size());
  // A text-only tokenizer has no image token; a prompt with images needs one.
  const std::optional<int32_t> image_role = tokenizer.roles().image;
  if (!image_role && n_images > 0) tokenizer.roles().image_id();
  const int32_t image_token_id = image_role.value_or(-1);
  const auto image_tokens = std::count(stored.begin(), stored.end(), image_token_id);
  if (image_tokens != n_images) {
    throw DataError("the tokenizer made " + std::to_string(image_tokens) + " image token(s) of " +
                    std::to_string(n_images) + " " + std::string(kImage) + " marker(s)");
  }
  PromptRecord r;
  r.tokens = expand_image_tokens(stored, image_token_id, opts.image_tokens);
  if (n_images > 0) {
    r.images = at::empty({n_images, S, S, C}, at::kByte);  // (N, H, W, C)
    for (int64_t i = 0; i < n_images; ++i) {
      const Image image = load_record_image(image_dir, images[static_cast<size_t>(i)], S, C);
      std::memcpy(r.images.data_ptr<uint8_t>() + i * S * S * C, image.pixels.data(),
                  image.pixels.size());
    }
  }
  r.prompt = std::move(prompt);
  r.answer = std::move(answer);
  return r;
}

std::vector<PromptRecord> load_prompts(const std::filesystem::path& jsonl,
                                       const Tokenizer& tokenizer, const PromptOptions& opts) {
  check_options(opts);
  std::ifstream in(jsonl, std::ios::binary);
  if (!in) throw DataError(jsonl.string() + ": cannot open");
  const std::string keys[] = {opts.prompt_key, opts.answer_key};
  std::vector<PromptRecord> records;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      FieldRecord fields = parse_fields(line, keys);
      records.push_back(make_prompt(tokenizer, std::move(fields.values[0]),
                                    std::move(fields.values[1]), fields.images, jsonl.parent_path(),
                                    opts));
    } catch (const DataError& e) {
      throw DataError(jsonl.string() + ":" + std::to_string(number) + ": " + e.what());
    }
  }
  if (records.empty()) throw DataError(jsonl.string() + ": no records");
  return records;
}

}  // namespace muse::data
