// libFuzzer target: parsing a chat template and rendering a conversation
// with it. Any input must render or raise ChatTemplateError, never crash or
// run away (the renderer bounds nesting, recursion and steps).
#include <cstdint>
#include <string_view>

#include "data/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using muse::data::ChatMessage;
  try {
    const auto chat = muse::data::ChatTemplate::parse(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.jinja");
    (void)chat.render({{"system", "Be brief."},
                       {"user", "What is 6 + 4?"},
                       {"assistant", "<think>6 + 4 = 10</think>10"},
                       {"user", "And 7 + 5?"}},
                      {.add_generation_prompt = true, .bos_token = "<s>", .eos_token = "</s>"});
  } catch (const muse::data::ChatTemplateError&) {
  }
  return 0;
}
