// The C++ side of tests/data/chat_template_check.py, which compares
// muse-train's chat templates with transformers' rendering:
//
//   chat_template_tool TEMPLATE.jinja
//     stdin:  JSON lines {"messages": [{"role", "content"}...], "add_generation_prompt": b,
//                         "bos_token": s, "eos_token": s, "variables": {...}}
//     stdout: one JSON line each, {"text": s} or {"error": s}
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "data/chat_template.h"

namespace {

using muse::data::ChatMessage;
using muse::data::ChatRenderOptions;
using muse::data::ChatTemplate;
using json = nlohmann::ordered_json;

std::string render(const ChatTemplate& chat_template, const json& request) {
  std::vector<ChatMessage> messages;
  for (const json& message : request.at("messages")) {
    messages.push_back(
        {message.at("role").get<std::string>(), message.at("content").get<std::string>()});
  }
  ChatRenderOptions options;
  options.add_generation_prompt = request.value("add_generation_prompt", true);
  options.bos_token = request.value("bos_token", "");
  options.eos_token = request.value("eos_token", "");
  options.variables = request.value("variables", json::object());
  return chat_template.render(messages, options);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: chat_template_tool TEMPLATE.jinja < requests.jsonl\n";
    return 2;
  }
  try {
    std::ifstream in(argv[1], std::ios::binary);
    if (!in) throw std::runtime_error(std::string(argv[1]) + ": cannot be read");
    const std::string source((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
    const ChatTemplate chat_template = ChatTemplate::parse(source, argv[1]);
    std::string line;
    while (std::getline(std::cin, line)) {
      json reply;
      try {
        reply["text"] = render(chat_template, json::parse(line));
      } catch (const muse::data::ChatTemplateError& e) {
        reply["error"] = e.what();
      }
      std::cout << reply.dump() << '\n';
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
}
