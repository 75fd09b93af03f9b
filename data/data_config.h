// The `data.*` config section: which shards the loader reads and how it packs
// them into batches. The seed is the config's top-level `seed`.
#pragma once

#include <cstdint>
#include <string>

#include "config/schema.h"
#include "data/token_roles.h"

namespace muse::data {

struct DataConfig {
  std::string shards = "data/tiny/shards/pretrain";
  std::string tokenizer = "data/tiny/tokenizer.json";
  int64_t seq_len = 256;
  int64_t batch_size = 8;
  bool shuffle = true;
  TokenRolesConfig tokens;
  bool chat = false;
  std::string chat_template;
  std::string chat_system;

  template <class V>
  void visit(V& v) {
    v.field("shards", shards,
            {.help = "the HDF5 shards to train on: a directory (its *.h5 files) or a glob "
                     "pattern such as 'data/web/shard_*.h5'"});
    v.field("tokenizer", tokenizer,
            {.help = "the tokenizer.json the shards were built with; prompts (evaluation, RL) "
                     "are encoded with it (with init_from: hf:DIR, DIR's own by default)"});
    v.field("seq_len", seq_len,
            {.help = "tokens per packed sequence (the model's context T); each row holds T+1 "
                     "tokens so inputs and targets shift by one",
             .unit = "tokens",
             .ge = 2});
    v.field("batch_size", batch_size,
            {.help = "global batch: sequences per optimizer step over all ranks (must divide "
                     "evenly by the world size)",
             .unit = "sequences",
             .ge = 1});
    v.field("shuffle", shuffle,
            {.help = "shuffle the order of documents every epoch (from the top-level seed); "
                     "false keeps the shards' order"});
    v.field("chat", chat,
            {.help = "present every prompt (SFT examples, RL, evaluation, contemplating mode) as "
                     "the user turn of the model's chat template, with its generation prompt, "
                     "as transformers' apply_chat_template(..., add_generation_prompt=True)"});
    v.field("chat_template", chat_template,
            {.help = "a Jinja chat template file; empty: the tokenizer's own (chat_template.jinja "
                     "or tokenizer_config.json's chat_template beside data.tokenizer)"});
    v.field("chat_system", chat_system,
            {.help = "a system message before each prompt; empty: none (a template's default "
                     "system prompt then applies)"});
    v.section("tokens", tokens,
              "What the tokenizer's tokens are used for (docs/models.md): begin and end of text, "
              "the image placeholder, the reasoning and answer markers.");
  }
};

}  // namespace muse::data
