// muse-data: builds training data.
//
//   muse-data build --input X.jsonl [--input ...] --tokenizer tokenizer.json --out DIR
//                   --shard-tokens N [--image-size S] [--channels C] [--workers K]
//                   [--prompt-key KEY --response-key KEY]
//   muse-data tokenizer train --input FILE [--input ...] --vocab-size V --out tokenizer.json
//   muse-data checksum [--add] PATH [PATH ...]
//
// Exit codes: 0 success, 1 runtime failure, 2 bad command line or bad input data.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "config/cli.h"
#include "data/data_error.h"
#include "data/jsonl.h"
#include "data/prompts.h"
#include "data/shard.h"
#include "data/shard_builder.h"
#include "data/shard_checksum.h"
#include "data/tokenizer.h"
#include "muse/version.h"
#include "telemetry/log.h"
#include "telemetry/progress.h"

namespace {

namespace config = muse::config;
namespace data = muse::data;
namespace fs = std::filesystem;
namespace telemetry = muse::telemetry;
using Clock = std::chrono::steady_clock;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

const char* kDescription =
    "Builds the training data of muse-train. Commands:\n"
    "  build            tokenize JSON Lines records and their images into HDF5 shards\n"
    "  tokenizer train  learn a byte-level BPE tokenizer.json from text or JSON Lines files\n"
    "  checksum         check shards against their checksum; --add gives old shards one\n"
    "Run `muse-data COMMAND --help` for a command's options. Exit codes: 0 success,\n"
    "1 runtime failure, 2 bad command line or bad input data.";

const char* kBuildDescription =
    "Reads JSON Lines records {\"text\": \"... <image> ...\", \"images\": [\"a.png\", ...]}\n"
    "(one <image> marker per image; image paths relative to the JSONL file), tokenizes\n"
    "each as BOS text EOS, decodes PNG/JPEG images, converts them to C channels and\n"
    "area-resizes them to S x S, and writes OUT/shard_NNNNNN.h5 files of about N tokens\n"
    "(docs/formats.md). With --prompt-key and --response-key, each record is a\n"
    "supervised example instead: BOS prompt response EOS, tokenized as two separate\n"
    "strings (the response as given, no space added), its <image> markers in the\n"
    "prompt, and the loss counted only from the response on (/loss_starts). A bad\n"
    "record is an error naming FILE:LINE; the shards written so far are then removed.";

std::string version_text() {
  return std::string("muse-data ") + MUSE_VERSION + " (commit " + MUSE_GIT_COMMIT + ")";
}

void require(const std::string& option, bool given) {
  if (!given) throw config::UsageError(option + " is required");
}

// "1 shard", "4 shards".
std::string counted(int64_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", seconds);
  return text;
}

int build(const std::vector<std::string>& args) {
  std::vector<std::string> inputs;
  std::string tokenizer_path, out, shard_tokens, image_size = "32", channels = "3", workers,
                                                 progress = "auto", prompt_key, response_key;
  data::DataConfig text_format;  // the tokenizer, and with --chat its chat template
  bool help = false;
  config::ArgParser parser(
      "muse-data build",
      "--input X.jsonl [--input ...] --tokenizer tokenizer.json --out DIR --shard-tokens N "
      "[--image-size S] [--channels C] [--workers K] [--prompt-key KEY --response-key KEY "
      "[--chat [--chat-template FILE] [--chat-system TEXT]]]",
      kBuildDescription);
  parser.repeated("--input", "X.jsonl", &inputs, "a JSON Lines file of records (repeatable)");
  parser.option("--tokenizer", "FILE", &tokenizer_path, "the tokenizer.json to tokenize with");
  parser.option("--out", "DIR", &out,
                "directory for the shards (created; must not already hold shards)");
  parser.option("--shard-tokens", "N", &shard_tokens,
                "tokens per shard: a shard is written once it holds N tokens (documents are "
                "never split)");
  parser.option("--image-size", "S", &image_size, "image side after resizing (default 32)");
  parser.option("--channels", "C", &channels, "image channels: 1 (grayscale) or 3 (RGB, default)");
  parser.option("--workers", "K", &workers,
                "threads that tokenize and decode images (default: one per core)");
  parser.option("--progress", "MODE", &progress,
                "progress line: auto (in place on a terminal, lines otherwise), lines or off");
  parser.option("--prompt-key", "KEY", &prompt_key,
                "supervised examples: the key of the prompt, whose predictions do not count "
                "(with --response-key)");
  parser.option("--response-key", "KEY", &response_key,
                "supervised examples: the key of the response the loss is computed on (with "
                "--prompt-key)");
  parser.flag("--chat", &text_format.chat,
              "supervised examples: present each prompt as the user turn of the tokenizer's chat "
              "template (as muse-train's data.chat), the response then ending with its end token");
  parser.option("--chat-template", "FILE", &text_format.chat_template,
                "with --chat: a Jinja template instead of the one beside the tokenizer");
  parser.option("--chat-system", "TEXT", &text_format.chat_system,
                "with --chat: a system message before each prompt");
  parser.flag("--help", &help, "print this help and exit");
  parser.parse(args);
  if (help) {
    std::cout << parser.usage();
    return 0;
  }
  require("--input", !inputs.empty());
  if (text_format.chat && prompt_key.empty())
    throw config::UsageError(
        "--chat formats supervised examples: give --prompt-key and "
        "--response-key");
  require("--tokenizer", !tokenizer_path.empty());
  require("--out", !out.empty());
  require("--shard-tokens", !shard_tokens.empty());
  data::BuildOptions options;
  for (const auto& input : inputs)
    options.inputs.emplace_back(input);
  options.out_dir = out;
  options.shard_tokens = config::parse_int_option("--shard-tokens", shard_tokens, 1);
  options.image_size = config::parse_int_option("--image-size", image_size, 1);
  options.image_channels = config::parse_int_option("--channels", channels, 1);
  if (options.image_channels != 1 && options.image_channels != 3)
    throw config::UsageError("--channels: expected 1 or 3, got '" + channels + "'");
  if (prompt_key.empty() != response_key.empty())
    throw config::UsageError("--prompt-key and --response-key go together: give both or neither");
  options.prompt_key = prompt_key;
  options.response_key = response_key;
  options.workers = workers.empty() ? std::max<int64_t>(1, std::thread::hardware_concurrency())
                                    : config::parse_int_option("--workers", workers, 1);
  telemetry::ProgressMode mode;
  try {
    mode = telemetry::progress_mode(progress, ::isatty(STDOUT_FILENO) != 0);
  } catch (const std::invalid_argument& e) {
    throw config::UsageError(std::string("--progress: ") + e.what());
  }

  const auto start = Clock::now();
  text_format.tokenizer = tokenizer_path;
  const data::Tokenizer tokenizer = data::open_tokenizer(text_format);
  std::unique_ptr<telemetry::ProgressLine> line;
  int64_t tokens_before = 0;
  Clock::time_point last_update = start;
  const auto on_progress = [&](const data::BuildCounts& c) {
    // About one update a second, and the last one.
    const auto now = Clock::now();
    if (now - last_update < std::chrono::seconds(1) && c.lines_done < c.lines_total) return;
    last_update = now;
    if (!line) {
      line = std::make_unique<telemetry::ProgressLine>("muse-data build", c.lines_total, mode,
                                                       std::cout, 0, start);
    }
    line->update(c.lines_done, c.tokens - tokens_before,
                 {{"docs", telemetry::format_count(static_cast<double>(c.documents))},
                  {"images", telemetry::format_count(static_cast<double>(c.images))},
                  {"shards", std::to_string(c.shards)}});
    tokens_before = c.tokens;
  };
  const data::BuildCounts c = data::build_shards(options, tokenizer, on_progress);
  if (line) line->finish();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::ostringstream summary;
  summary << "muse-data build: " << counted(c.documents, "document") << ", "
          << counted(c.tokens, "token") << ", " << counted(c.images, "image") << ", "
          << counted(c.shards, "shard") << ", " << counted(c.bytes, "byte") << " in "
          << seconds_text(seconds) << " -> " << out;
  telemetry::log_info(summary.str());
  return 0;
}

int tokenizer_train(const std::vector<std::string>& args) {
  std::vector<std::string> inputs;
  std::string vocab_size, out;
  bool help = false;
  config::ArgParser parser(
      "muse-data tokenizer train", "--input FILE [--input ...] --vocab-size V --out tokenizer.json",
      "Learns a byte-level BPE tokenizer (Llama-3 pre-tokenizer, muse-train's special\n"
      "tokens) and writes it as a Hugging Face tokenizer.json. A *.jsonl input\n"
      "contributes the \"text\" of each record; any other file is read whole as UTF-8 text.");
  parser.repeated("--input", "FILE", &inputs, "a text or JSON Lines file (repeatable)");
  parser.option("--vocab-size", "V", &vocab_size,
                "tokens in the vocabulary, including the 256 bytes and the special tokens");
  parser.option("--out", "FILE", &out, "the tokenizer.json to write");
  parser.flag("--help", &help, "print this help and exit");
  parser.parse(args);
  if (help) {
    std::cout << parser.usage();
    return 0;
  }
  require("--input", !inputs.empty());
  require("--vocab-size", !vocab_size.empty());
  require("--out", !out.empty());
  data::TrainOptions options;
  options.vocab_size = config::parse_int_option("--vocab-size", vocab_size, 1);

  const auto start = Clock::now();
  std::vector<std::string> texts;
  int64_t bytes = 0;
  for (const auto& input : inputs) {
    std::ifstream in(input, std::ios::binary);
    if (!in) throw data::DataError(input + ": cannot open");
    if (fs::path(input).extension() == ".jsonl") {
      std::string line;
      for (int64_t number = 1; std::getline(in, line); ++number) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
          texts.push_back(data::parse_record(line).text);
        } catch (const data::DataError& e) {
          throw data::DataError(input + ":" + std::to_string(number) + ": " + e.what());
        }
        bytes += static_cast<int64_t>(texts.back().size());
      }
    } else {
      texts.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      bytes += static_cast<int64_t>(texts.back().size());
    }
  }
  const data::Tokenizer tokenizer = data::Tokenizer::train_from_texts(texts, options);
  tokenizer.save(out);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  telemetry::log_info("muse-data tokenizer train: " + counted(tokenizer.vocab_size(), "token") +
                      " learned from " + counted(static_cast<int64_t>(texts.size()), "text") +
                      " (" + counted(bytes, "byte") + ") in " + seconds_text(seconds) + " -> " +
                      out);
  return 0;
}

const char* kChecksumDescription =
    "Checks shards against the CRC-32C of all their bytes and opens them as muse-train's\n"
    "loader does. A PATH is a shard or a directory of *.h5 shards. With --add, a shard\n"
    "without a checksum (written by an older muse-data or by another tool) is checked\n"
    "whole, its structure and every token id, and then gets one: a copy behind the\n"
    "checksum header replaces the file (docs/data.md). Each bad shard is an error\n"
    "line; the others are still checked. Exit codes: 0 every shard is good, 1 runtime\n"
    "failure, 2 a bad shard or command line.";

// The shards `paths` name: files as given, directories by their *.h5 files.
std::vector<fs::path> shard_files(const std::vector<std::string>& paths) {
  std::vector<fs::path> files;
  for (const auto& path : paths) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
      files.emplace_back(path);
      continue;
    }
    std::vector<fs::path> in_directory;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      if (entry.is_regular_file() && entry.path().extension() == ".h5")
        in_directory.push_back(entry.path());
    }
    if (ec) throw data::DataError(path + ": cannot list the directory (" + ec.message() + ")");
    if (in_directory.empty()) throw data::DataError(path + ": no *.h5 shards in the directory");
    std::sort(in_directory.begin(), in_directory.end());
    files.insert(files.end(), in_directory.begin(), in_directory.end());
  }
  return files;
}

int checksum(const std::vector<std::string>& args) {
  bool add = false, help = false;
  config::ArgParser parser("muse-data checksum", "[--add] PATH [PATH ...]", kChecksumDescription);
  parser.flag("--add", &add, "give each shard without a checksum one, once it passed every check");
  parser.flag("--help", &help, "print this help and exit");
  // Options start with "--"; everything else is a path.
  std::vector<std::string> options, paths;
  for (const auto& arg : args)
    (arg.rfind("--", 0) == 0 ? options : paths).push_back(arg);
  parser.parse(options);
  if (help) {
    std::cout << parser.usage();
    return 0;
  }
  if (paths.empty()) throw config::UsageError("give the shards to check: a file or a directory");
  const std::vector<fs::path> files = shard_files(paths);

  const auto start = Clock::now();
  int64_t verified = 0, added = 0, bad = 0, bytes = 0;
  for (const auto& file : files) {
    try {
      if (add && !data::has_shard_checksum(file)) {
        data::add_shard_checksum(file);
        std::cout << file.string() << ": checksum added\n";
        ++added;
      } else {
        (void)data::ShardReader(file);
        ++verified;
      }
      bytes += static_cast<int64_t>(fs::file_size(file));
    } catch (const data::DataError& e) {
      telemetry::log_error(e.what());
      ++bad;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  char amount[64];
  std::snprintf(amount, sizeof amount, "%.1f MB in %.2f s (%.0f MB/s)", bytes / 1e6, seconds,
                bytes / 1e6 / std::max(seconds, 1e-6));
  telemetry::log_info("muse-data checksum: " + counted(verified, "shard") + " verified, " +
                      counted(added, "checksum") + " added, " + counted(bad, "bad shard") + "; " +
                      amount);
  return bad > 0 ? kExitUsage : 0;
}

int run(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "build") return build({args.begin() + 1, args.end()});
  if (args.size() >= 2 && args[0] == "tokenizer" && args[1] == "train")
    return tokenizer_train({args.begin() + 2, args.end()});
  if (!args.empty() && args[0] == "checksum") return checksum({args.begin() + 1, args.end()});

  bool help = false, version = false;
  config::ArgParser parser("muse-data", "COMMAND [options] | --help | --version", kDescription);
  parser.flag("--version", &version, "print the version and exit");
  parser.flag("--help", &help, "print this help and exit");
  if (!args.empty() && args[0].rfind("--", 0) != 0) {
    throw config::UsageError(
        "unknown command '" + args[0] +
        "' (expected build, tokenizer train or checksum; see muse-data --help)");
  }
  parser.parse(args);
  if (help) {
    std::cout << parser.usage();
    return 0;
  }
  if (version) {
    std::cout << version_text() << "\n";
    return 0;
  }
  throw config::UsageError(
      "a command is required: build, tokenizer train or checksum (see muse-data --help)");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const config::UsageError& e) {
    telemetry::log_error(e.what());
    return kExitUsage;
  } catch (const data::DataError& e) {
    telemetry::log_error(e.what());
    return kExitUsage;
  } catch (const data::TokenizerError& e) {
    telemetry::log_error(e.what());
    return kExitUsage;
  } catch (const data::ChatTemplateError& e) {
    telemetry::log_error(e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    const std::string message = e.what();
    telemetry::log_error(message.substr(0, message.find('\n')));
    return kExitFailure;
  }
}
