// The C++ side of bench/rollout/run.sh: model::generate on a checkpoint,
// timed call by call.
//
//   rollout_bench tokenize TOKENIZER.json PROMPTS.jsonl COUNT [--chat]
//   rollout_bench serve CHECKPOINT|hf:DIR IDS.txt [THREADS]
//   rollout_bench peak [THREADS]
//
// tokenize prints the token ids of the first COUNT prompts as
// data::encode_prompt makes them (BOS + encode(prompt), or with --chat the
// tokenizer's chat template around a user turn), one line of space-separated
// ids each, with the <image> markers removed from the text: the other side
// runs a text model, so both sides run text-only prompts.
//
// serve loads the model once (LibTorch on THREADS threads, default its own
// choice), prints {"ready": true, ...} with the model's shape, then answers
// each request line on stdin with one JSON line holding the wall and CPU
// seconds of one generate() call:
//
//   BATCH NEW_TOKENS SEED         the first BATCH prompts of IDS.txt (repeated
//                                 when there are fewer), exactly NEW_TOKENS
//                                 tokens each (temperature 1, no top-k/top-p,
//                                 no stop tokens)
//   group P G MAX_NEW SEED STOPS  the first P prompts, G samples each (a GRPO
//                                 batch), temperature 1, ending at any of STOPS
//                                 (comma-separated ids) or MAX_NEW tokens;
//                                 the reply holds every sequence's length
//   greedy BATCH NEW_TOKENS       argmax, exactly NEW_TOKENS tokens; the reply
//                                 holds the first sequence's ids
//   peak                          the machine's limits, as `peak` prints them,
//                                 measured in this process now
//
// peak prints the machine's limits for the roofline: the fp32 matrix
// product's GFLOP/s (square products of 2048, the faster of MKL's at::mm and
// the engine's product over a packed weight) and the memory read bandwidth
// in GB/s (sums over 512 MiB), the best of several tries, on THREADS threads.
// On a shared machine they move from minute to minute, so bench.py asks
// serve for them before every workload's calls.
// bench.py interleaves the serve requests with the same ones to
// vllm_generate.py.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <exception>
#include <fstream>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "data/prompts.h"
#include "data/tokenizer.h"
#include "formats/model_source.h"
#include "model/generate.h"
#include "model/linear.h"

namespace {

namespace model = muse::model;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int tokenize(const std::string& tokenizer_path, const std::string& prompts_path, int64_t count,
             bool chat) {
  muse::data::DataConfig data;
  data.tokenizer = tokenizer_path;
  data.chat = chat;
  const auto tokenizer = muse::data::open_tokenizer(data);
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

// Wall and CPU seconds of one generate() call, and its generations.
std::pair<Timing, std::vector<model::Generation>> timed_generate(
    const model::Model& m, const std::vector<model::Prompt>& prompts,
    const model::GenerateOptions& options) {
  const double cpu_start = cpu_seconds();
  const Clock::time_point start = Clock::now();
  std::vector<model::Generation> out = model::generate(m, prompts, options);
  return {{.seconds = seconds_since(start), .cpu_seconds = cpu_seconds() - cpu_start},
          std::move(out)};
}

std::vector<int64_t> parse_ids(const std::string& list) {
  std::vector<int64_t> ids;
  std::stringstream in(list);
  for (std::string id; std::getline(in, id, ',');)
    ids.push_back(std::stoll(id));
  return ids;
}

// One reply to a request line (the header's forms).
json answer(const model::Model& m, const std::vector<std::vector<int64_t>>& ids,
            const std::string& line) {
  std::stringstream in(line);
  std::string first;
  in >> first;
  const bool group = first == "group", greedy = first == "greedy";
  int64_t batch = 0, samples = 1, new_tokens = 0;
  uint64_t seed = 0;
  std::string stops;
  if (group) {
    in >> batch >> samples >> new_tokens >> seed >> stops;
  } else if (greedy) {
    in >> batch >> new_tokens;
  } else {
    std::istringstream(first) >> batch;  // stays 0, a bad line, unless a number
    in >> new_tokens >> seed;
  }
  if (!in || batch < 1 || samples < 1 || new_tokens < 1)
    throw std::runtime_error("bad request line '" + line + "'");
  std::vector<model::Prompt> prompts;
  int64_t prompt_tokens = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const auto& row = ids[b % ids.size()];
    prompt_tokens += static_cast<int64_t>(row.size());
    for (int64_t j = 0; j < samples; ++j)
      prompts.push_back({.tokens = row, .max_new_tokens = new_tokens});
  }
  const model::GenerateOptions options{
      .sampling = {.temperature = greedy ? 0.0 : 1.0, .top_k = 0, .top_p = 1.0},
      .stop_tokens = group ? parse_ids(stops) : std::vector<int64_t>{},
      .seed = seed};
  const auto [timing, out] = timed_generate(m, prompts, options);
  std::vector<int64_t> lengths;
  int64_t stopped = 0;
  for (const model::Generation& g : out) {
    lengths.push_back(static_cast<int64_t>(g.tokens.size()));
    stopped += g.stop_reason == model::StopReason::kStopToken;
    if (!group && lengths.back() != new_tokens)
      throw std::runtime_error("a sequence generated " + std::to_string(lengths.back()) +
                               " tokens instead of " + std::to_string(new_tokens));
  }
  json reply{{"side", "muse"}, {"mode", group ? "group" : greedy ? "greedy" : "exact"}};
  if (group) {
    reply.update({{"prompts", batch},
                  {"samples", samples},
                  {"max_new", new_tokens},
                  {"seed", seed},
                  {"lengths", lengths},
                  {"stopped", stopped}});
  } else {
    reply.update({{"batch", batch}, {"new_tokens", new_tokens}, {"seed", seed}});
  }
  if (greedy) reply["ids"] = out.front().tokens;
  int64_t tokens = 0;
  for (const int64_t n : lengths)
    tokens += n;
  reply.update({{"prompt_tokens", prompt_tokens},
                {"tokens", tokens},
                {"seconds", timing.seconds},
                {"cpu_s", timing.cpu_seconds}});
  return reply;
}

// The best of `tries` timings of `work`, in seconds.
template <typename Work>
double best_seconds(int tries, Work work) {
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < tries; ++i) {
    const Clock::time_point start = Clock::now();
    work();
    best = std::min(best, seconds_since(start));
  }
  return best;
}

json machine_limits() {
  constexpr int64_t kSide = 2048, kFloats = int64_t{1} << 27;  // 512 MiB
  const at::Tensor a = at::randn({kSide, kSide}), b = at::randn({kSide, kSide});
  at::Tensor c = at::empty({kSide, kSide});
  at::mm_out(c, a, b);  // warm-up
  const double mm_s = best_seconds(5, [&] { at::mm_out(c, a, b); });
  // The engine's own product over a weight packed once (oneDNN's kernels):
  // on some CPUs it is faster than MKL's, and the roofline takes the faster.
  const at::Tensor packed = model::pack_linear(b.t().contiguous(), kSide);
  (void)model::project(a, packed);
  const double engine_s = best_seconds(5, [&] { (void)model::project(a, packed); });
  const at::Tensor big = at::ones({kFloats});
  const double read_s = best_seconds(5, [&] { (void)big.sum().item<float>(); });
  const double flops = 2.0 * kSide * kSide * kSide;
  return json{{"threads", at::get_num_threads()},
              {"matmul_gflops", flops / std::min(mm_s, engine_s) / 1e9},
              {"mkl_gflops", flops / mm_s / 1e9},
              {"engine_gflops", flops / engine_s / 1e9},
              {"read_gbps", 4.0 * kFloats / read_s / 1e9}};
}

int peak(int64_t threads) {
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  std::cout << machine_limits().dump() << std::endl;
  return 0;
}

int serve(const std::string& checkpoint, const std::string& ids_path, int64_t threads) {
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  const model::Model m =
      muse::formats::load_model_from(checkpoint, "checkpoint", model::ModelConfig{}, 0, at::kCPU);
  const auto ids = read_ids(ids_path);
  const model::ModelConfig& c = m.config();
  // What the roofline needs: the weights every token multiplies, and the
  // attention's work per position of context.
  const int64_t kv_width = c.n_kv_heads * c.head_dim(), q_width = c.n_heads * c.head_dim();
  const int64_t block_params =
      c.dim * (q_width + 2 * kv_width) + q_width * c.dim + 3 * c.dim * c.ffn_hidden;
  std::cout << json{{"ready", true},
                    {"side", "muse"},
                    {"threads", at::get_num_threads()},
                    {"matmul_params", c.n_layers * block_params + c.vocab_size * c.dim},
                    {"attention_flops_per_position", 4 * c.n_layers * q_width},
                    {"kv_bytes_per_position", 2 * c.n_layers * kv_width * 4}}
                   .dump()
            << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (line == "peak") {
      json reply = machine_limits();
      reply.update({{"side", "muse"}, {"mode", "peak"}});
      std::cout << reply.dump() << std::endl;
    } else {
      std::cout << answer(m, ids, line).dump() << std::endl;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if ((args.size() == 4 || (args.size() == 5 && args[4] == "--chat")) && args[0] == "tokenize")
      return tokenize(args[1], args[2], std::stoll(args[3]), args.size() == 5);
    if ((args.size() == 3 || args.size() == 4) && args[0] == "serve")
      return serve(args[1], args[2], args.size() == 4 ? std::stoll(args[3]) : 0);
    if (args.size() <= 2 && !args.empty() && args[0] == "peak")
      return peak(args.size() == 2 ? std::stoll(args[1]) : 0);
  } catch (const std::exception& e) {
    std::cerr << "error: rollout_bench: " << e.what() << '\n';
    return 1;
  }
  std::cerr << "usage: rollout_bench tokenize TOKENIZER.json PROMPTS.jsonl COUNT [--chat]\n"
               "       rollout_bench serve CHECKPOINT|hf:DIR IDS.txt [THREADS]\n"
               "       rollout_bench peak [THREADS]\n";
  return 2;
}
