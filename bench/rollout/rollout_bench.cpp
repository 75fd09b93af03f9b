// The C++ side of bench/rollout/run.sh: batched sampling with
// model::generate on a checkpoint, timed call by call.
//
//   rollout_bench tokenize TOKENIZER.json PROMPTS.jsonl COUNT
//   rollout_bench serve CHECKPOINT IDS.txt [THREADS]
//
// tokenize prints the token ids (BOS + encode(prompt), as data::encode_prompt
// makes them) of the first COUNT prompts, one line of space-separated ids
// each, with the <image> markers removed from the text: the exported Llama
// has no image tower, so both sides run text-only prompts.
//
// serve loads the checkpoint once (LibTorch on THREADS threads, default its
// own choice), prints {"ready": true, ...}, then answers each request line
// "BATCH NEW_TOKENS SEED" on stdin with one JSON line: the wall and CPU
// seconds of one generate() call on the first BATCH prompts of IDS.txt
// (repeated when there are fewer), sampling exactly NEW_TOKENS tokens for
// each (temperature 1, no top-k/top-p, no stop tokens). bench.py interleaves
// these requests with the same ones to hf_generate.py.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <exception>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "formats/model_source.h"
#include "model/generate.h"

namespace {

namespace model = muse::model;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int tokenize(const std::string& tokenizer_path, const std::string& prompts_path, int64_t count) {
  const auto tokenizer = muse::data::Tokenizer::load(tokenizer_path);
  std::ifstream in(prompts_path);
  if (!in) throw std::runtime_error("cannot read " + prompts_path);
  int64_t written = 0;
  for (std::string line; written < count && std::getline(in, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string text = json::parse(line).at("prompt").get<std::string>();
    // Each marker goes with the space before it.
    const std::string marker(muse::data::kImage);
    for (size_t at; (at = text.find(marker)) != std::string::npos;) {
      const size_t begin = at > 0 && text[at - 1] == ' ' ? at - 1 : at;
      text.erase(begin, at + marker.size() - begin);
    }
    const auto ids = muse::data::encode_prompt(tokenizer, text);
    for (size_t i = 0; i < ids.size(); ++i)
      std::cout << (i ? " " : "") << ids[i];
    std::cout << '\n';
    ++written;
  }
  if (written < count)
    throw std::runtime_error(prompts_path + " has fewer than " + std::to_string(count) +
                             " prompts");
  return 0;
}

std::vector<std::vector<int64_t>> read_ids(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<std::vector<int64_t>> out;
  for (std::string line; std::getline(in, line);) {
    std::stringstream ids(line);
    std::vector<int64_t> row;
    for (int64_t id; ids >> id;)
      row.push_back(id);
    if (!row.empty()) out.push_back(row);
  }
  if (out.empty()) throw std::runtime_error(path + " holds no prompts");
  return out;
}

// CPU seconds this process has used so far, all threads.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

struct Timing {
  double seconds = 0, cpu_seconds = 0;
};

// Wall and CPU seconds of one generate() call on the first `batch` prompts
// (repeated when there are fewer), after checking that every sequence got
// exactly `new_tokens` tokens.
Timing timed_generate(const model::Model& m, const std::vector<std::vector<int64_t>>& ids,
                      int64_t batch, int64_t new_tokens, uint64_t seed) {
  std::vector<model::Prompt> prompts;
  for (int64_t b = 0; b < batch; ++b)
    prompts.push_back({.tokens = ids[b % ids.size()], .max_new_tokens = new_tokens});
  const model::GenerateOptions options{
      .sampling = {.temperature = 1.0, .top_k = 0, .top_p = 1.0}, .stop_tokens = {}, .seed = seed};
  const double cpu_start = cpu_seconds();
  const Clock::time_point start = Clock::now();
  const std::vector<model::Generation> out = model::generate(m, prompts, options);
  const Timing timing{.seconds = seconds_since(start), .cpu_seconds = cpu_seconds() - cpu_start};
  for (const model::Generation& g : out) {
    if (static_cast<int64_t>(g.tokens.size()) != new_tokens)
      throw std::runtime_error("a sequence generated " + std::to_string(g.tokens.size()) +
                               " tokens instead of " + std::to_string(new_tokens));
  }
  return timing;
}

int serve(const std::string& checkpoint, const std::string& ids_path, int64_t threads) {
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  const muse::checkpoints::Checkpoint ckpt(
      muse::formats::resolve_init_from(checkpoint, "checkpoint"));
  const model::Model m = muse::formats::load_model(ckpt, 0, at::kCPU);
  const auto ids = read_ids(ids_path);
  std::cout << json{{"ready", true},
                    {"preset", m.config().preset},
                    {"threads", at::get_num_threads()}}
                   .dump()
            << std::endl;
  int64_t batch = 0, new_tokens = 0;
  uint64_t seed = 0;
  while (std::cin >> batch >> new_tokens >> seed) {
    int64_t prompt_tokens = 0;
    for (int64_t b = 0; b < batch; ++b)
      prompt_tokens += static_cast<int64_t>(ids[b % ids.size()].size());
    const Timing timing = timed_generate(m, ids, batch, new_tokens, seed);
    std::cout << json{{"side", "muse"},
                      {"preset", m.config().preset},
                      {"batch", batch},
                      {"new_tokens", new_tokens},
                      {"seed", seed},
                      {"prompt_tokens", prompt_tokens},
                      {"tokens", batch * new_tokens},
                      {"seconds", timing.seconds},
                      {"cpu_s", timing.cpu_seconds}}
                     .dump()
              << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() == 4 && args[0] == "tokenize")
      return tokenize(args[1], args[2], std::stoll(args[3]));
    if ((args.size() == 3 || args.size() == 4) && args[0] == "serve")
      return serve(args[1], args[2], args.size() == 4 ? std::stoll(args[3]) : 0);
  } catch (const std::exception& e) {
    std::cerr << "rollout_bench: " << e.what() << '\n';
    return 1;
  }
  std::cerr << "usage: rollout_bench tokenize TOKENIZER.json PROMPTS.jsonl COUNT\n"
               "       rollout_bench serve CHECKPOINT IDS.txt [THREADS]\n";
  return 2;
}
