// The C++ side of bench/tokenizer/run.sh: training time and encode throughput
// of muse-train's tokenizer, printed as one JSON line each.
//
//   tokenizer_bench train OUT.json gpt2|llama3 VOCAB_SIZE FILE...
//   tokenizer_bench encode TOKENIZER.json DOCS.jsonl THREADS REPS
//
// DOCS.jsonl holds one {"text": ...} per document; encode splits the documents
// into THREADS contiguous parts, one thread each, encodes every document once
// per repetition, and reports the best repetition and the first (cold cache). The checksum of the
// ids (in document order) lets run.sh check that both tokenizers agree.
#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <exception>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "data/tokenizer.h"

namespace {

using muse::data::Tokenizer;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int train(const std::vector<std::string>& args) {
  muse::data::TrainOptions options;
  options.pretokenizer =
      args.at(1) == "gpt2" ? muse::data::Pretokenizer::kGpt2 : muse::data::Pretokenizer::kLlama3;
  options.vocab_size = std::stoll(args.at(2));
  const std::vector<std::string> files(args.begin() + 3, args.end());
  const auto start = Clock::now();
  const Tokenizer tokenizer = Tokenizer::train(files, options);
  const double train_seconds = seconds_since(start);
  tokenizer.save(args.at(0));
  std::cout << json{{"side", "muse"},
                    {"what", "train"},
                    {"pretokenizer", args.at(1)},
                    {"vocab_size", tokenizer.vocab_size()},
                    {"seconds", train_seconds}}
                   .dump()
            << '\n';
  return 0;
}

int encode(const std::vector<std::string>& args) {
  const auto load_start = Clock::now();
  const Tokenizer tokenizer = Tokenizer::load(args.at(0));
  const double load_seconds = seconds_since(load_start);
  std::vector<std::string> docs;
  std::ifstream in(args.at(1));
  size_t bytes = 0;
  for (std::string line; std::getline(in, line);) {
    docs.push_back(json::parse(line).at("text").get<std::string>());
    bytes += docs.back().size();
  }
  const int threads = std::stoi(args.at(2));
  const int reps = std::stoi(args.at(3));

  // The workers live through all repetitions, as a loader's threads would (the
  // word cache is per thread), and meet at the barrier before and after each.
  std::vector<std::vector<int32_t>> ids(docs.size());
  std::barrier sync(threads + 1);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const size_t first = docs.size() * t / threads, last = docs.size() * (t + 1) / threads;
      for (int rep = 0; rep < reps; ++rep) {
        sync.arrive_and_wait();
        for (size_t d = first; d < last; ++d)
          ids[d] = tokenizer.encode(docs[d]);
        sync.arrive_and_wait();
      }
    });
  }
  double first_rep = 0, best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    const auto start = Clock::now();
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    const double seconds = seconds_since(start);
    if (rep == 0) first_rep = seconds;
    best = std::min(best, seconds);
  }
  for (auto& worker : workers)
    worker.join();
  uint64_t checksum = 0, tokens = 0;
  for (const auto& doc : ids) {
    for (const int32_t id : doc)
      checksum = checksum * 1000003u + static_cast<uint64_t>(id) + 1;
    tokens += doc.size();
  }
  std::cout
      << json{{"side", "muse"},      {"what", "encode"},           {"threads", threads},
              {"bytes", bytes},      {"docs", docs.size()},        {"tokens", tokens},
              {"seconds", best},     {"first_seconds", first_rep}, {"load_seconds", load_seconds},
              {"checksum", checksum}}
             .dump()
      << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + std::min(argc, 2), argv + argc);
  const std::string command = argc > 1 ? argv[1] : "";
  try {
    if (command == "train") return train(args);
    if (command == "encode") return encode(args);
    std::cerr << "usage: tokenizer_bench train|encode ... (see the source)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
}
