#include "data/token_roles.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "data/tokenizer.h"
#include "data/tokenizer_impl.h"

namespace muse::data {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// muse-data's tokenizers carry these and no tokenizer_config.json.
constexpr std::string_view kMuseBos = "<|begin_of_text|>";
constexpr std::string_view kMuseEos = "<|end_of_text|>";
constexpr std::string_view kMusePad = "<|pad|>";

// A JSON file beside the tokenizer, or null when there is none.
json read_sibling(const std::string& tokenizer_path, const char* name) {
  if (tokenizer_path.empty()) return nullptr;
  const fs::path path = fs::path(tokenizer_path).parent_path() / name;
  std::ifstream in(path, std::ios::binary);
  if (!in) return nullptr;
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw TokenizerError(path.string() + ": malformed JSON (" + e.what() + ")");
  }
}

// tokenizer_config.json spells a token as its text or as {"content": text}.
std::optional<std::string> token_text(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

int32_t named_id(const Tokenizer& tokenizer, const std::string& origin, std::string_view key,
                 const std::string& text) {
  if (const auto id = tokenizer.token_id(text)) return *id;
  throw TokenizerError("data.tokens." + std::string(key) + ": " + origin + " has no token " +
                       detail::in_quotes(text));
}

TokenMarker marker(const Tokenizer& tokenizer, const std::string& text) {
  return {.text = text, .ids = text.empty() ? std::vector<int32_t>{} : tokenizer.encode(text)};
}

// A response's text and the byte offset at which each token starts (plus the
// end), from one pass over its tokens.
struct DecodedTokens {
  std::string text;
  std::vector<size_t> starts = {0};
};

DecodedTokens decode_tokens(const Tokenizer& tokenizer, std::span<const int64_t> response) {
  DecodedTokens d;
  for (const int64_t id : response) {
    const int32_t one = static_cast<int32_t>(id);
    d.text += tokenizer.decode(std::span(&one, 1));
    d.starts.push_back(d.text.size());
  }
  return d;
}

// Tokens whose first byte lies in [begin, end).
int64_t tokens_starting_in(const std::vector<size_t>& starts, size_t begin, size_t end) {
  int64_t n = 0;
  for (size_t i = 0; i + 1 < starts.size(); ++i)
    n += starts[i] >= begin && starts[i] < end ? 1 : 0;
  return n;
}

}  // namespace

int32_t TokenRoles::end() const {
  if (stop.empty()) {
    throw TokenizerError("data.tokens.eos: " + origin +
                         " names no end token (no eos_token in a tokenizer_config.json beside it, "
                         "no <|end_of_text|>); set data.tokens.eos to the token that ends a "
                         "response");
  }
  return stop.front();
}

std::vector<int64_t> TokenRoles::stop_tokens() const {
  end();  // throws when there is none
  return {stop.begin(), stop.end()};
}

int32_t TokenRoles::image_id() const {
  if (image) return *image;
  throw TokenizerError("data.tokens.image: " + origin + " has no token " +
                       detail::in_quotes(image_text) +
                       " (prompts and documents with images need one)");
}

int32_t TokenRoles::pad_id() const {
  return pad ? *pad : end();
}

int32_t TokenRoles::single(const TokenMarker& marker, std::string_view key) {
  if (marker.ids.size() == 1) return marker.ids.front();
  throw TokenizerError("data.tokens." + std::string(key) + ": " + detail::in_quotes(marker.text) +
                       " is " + std::to_string(marker.ids.size()) +
                       " tokens; this use needs a marker that is one token");
}

TokenRoles resolve_token_roles(const Tokenizer& tokenizer, const std::string& path,
                               const TokenRolesConfig& config) {
  TokenRoles roles;
  roles.origin = path.empty() ? "the tokenizer" : path;
  const json tokenizer_config = read_sibling(path, "tokenizer_config.json");
  const json generation_config = read_sibling(path, "generation_config.json");

  if (config.bos == "auto") {
    roles.bos = tokenizer.leading_special_tokens();
    const auto muse_bos = tokenizer.token_id(kMuseBos);
    if (roles.bos.empty() && !tokenizer.has_post_processor() && muse_bos) roles.bos = {*muse_bos};
  } else if (!config.bos.empty()) {
    roles.bos = {named_id(tokenizer, roles.origin, "bos", config.bos)};
  }

  if (config.eos == "auto") {
    if (const auto text = token_text(tokenizer_config, "eos_token")) {
      const auto id = tokenizer.token_id(*text);
      if (!id) {
        throw TokenizerError("data.tokens.eos: the tokenizer_config.json beside " + roles.origin +
                             " names eos_token " + detail::in_quotes(*text) +
                             ", which the tokenizer lacks; set data.tokens.eos");
      }
      roles.stop.push_back(*id);
    } else if (const auto id = tokenizer.token_id(kMuseEos)) {
      roles.stop.push_back(*id);
    }
    const json& ids = generation_config.is_object() && generation_config.contains("eos_token_id")
                          ? generation_config["eos_token_id"]
                          : json(nullptr);
    for (const json& id : ids.is_array() ? ids : json::array({ids})) {
      if (!id.is_number_integer()) continue;
      const auto value = id.get<int32_t>();
      if (std::find(roles.stop.begin(), roles.stop.end(), value) == roles.stop.end())
        roles.stop.push_back(value);
    }
  } else {
    roles.stop = {named_id(tokenizer, roles.origin, "eos", config.eos)};
  }

  if (const auto text = token_text(tokenizer_config, "pad_token")) {
    roles.pad = tokenizer.token_id(*text);
  } else {
    roles.pad = tokenizer.token_id(kMusePad);
  }
  roles.template_bos = token_text(tokenizer_config, "bos_token")
                           .value_or(roles.bos.empty() ? "" : tokenizer.decode(roles.bos));
  roles.template_eos =
      token_text(tokenizer_config, "eos_token")
          .value_or(roles.stop.empty() ? "" : tokenizer.decode({roles.stop.data(), 1}));
  roles.image_text = config.image;
  if (!config.image.empty()) roles.image = tokenizer.token_id(config.image);
  roles.think_begin = marker(tokenizer, config.think_begin);
  roles.think_end = marker(tokenizer, config.think_end);
  roles.answer_begin = marker(tokenizer, config.answer_begin);
  roles.answer_end = marker(tokenizer, config.answer_end);
  return roles;
}

int64_t count_reasoning_tokens(const Tokenizer& tokenizer, std::span<const int64_t> response,
                               bool opened_by_prompt) {
  const TokenRoles& roles = tokenizer.roles();
  if (roles.think_begin.text.empty() || roles.think_end.text.empty())
    return static_cast<int64_t>(response.size());
  const DecodedTokens d = decode_tokens(tokenizer, response);
  size_t open_end = 0;
  if (!opened_by_prompt) {
    const size_t open = d.text.find(roles.think_begin.text);
    if (open == std::string::npos) return 0;
    open_end = open + roles.think_begin.text.size();
  }
  const size_t close = std::min(d.text.find(roles.think_end.text, open_end), d.text.size());
  return tokens_starting_in(d.starts, open_end, close);
}

bool prompt_opens_reasoning(const Tokenizer& tokenizer, std::string_view prompt_text) {
  const TokenRoles& roles = tokenizer.roles();
  if (roles.think_begin.text.empty()) return false;
  const size_t open = prompt_text.rfind(roles.think_begin.text);
  if (open == std::string_view::npos) return false;
  const size_t close = prompt_text.rfind(roles.think_end.text);
  return close == std::string_view::npos || close < open;
}

std::vector<int64_t> tokens_after_reasoning(const Tokenizer& tokenizer,
                                            std::span<const int64_t> response) {
  const std::string& marker = tokenizer.roles().think_end.text;
  if (marker.empty()) return {response.begin(), response.end()};
  const DecodedTokens d = decode_tokens(tokenizer, response);
  const size_t close = d.text.rfind(marker);
  if (close == std::string::npos) return {};
  const size_t after = close + marker.size();
  const auto first =
      std::lower_bound(d.starts.begin(), d.starts.end() - 1, after) - d.starts.begin();
  return {response.begin() + first, response.end()};
}

}  // namespace muse::data
