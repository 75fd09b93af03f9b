// muse-export: turns a muse-train checkpoint into files inference engines
// load: a Hugging Face directory (transformers, vLLM) or a GGUF file
// (llama.cpp).
//
//   muse-export --checkpoint DIR --format hf --out OUT_DIR [--dtype fp32|bf16|fp16]
//   muse-export --checkpoint DIR --format gguf --out FILE.gguf [--dtype ...]
//
// Exit codes: 0 success, 1 runtime failure, 2 bad command line or input.

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "apps/muse_config.h"
#include "checkpoints/checkpoint.h"
#include "config/cli.h"
#include "formats/export.h"
#include "formats/model_source.h"
#include "muse/version.h"
#include "telemetry/log.h"

namespace {

namespace checkpoints = muse::checkpoints;
namespace formats = muse::formats;
namespace model = muse::model;
namespace config = muse::config;
namespace telemetry = muse::telemetry;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

const char* kDescription =
    "Exports a muse-train checkpoint (any stage, saved by any number of ranks), or\n"
    "converts a Hugging Face directory (--checkpoint hf:DIR).\n"
    "--format hf writes a Hugging Face directory: the family's config.json,\n"
    "model.safetensors (sharded with an index above --max-shard-bytes), the image\n"
    "projector in muse/multi_modal_projector.safetensors with muse_config.json,\n"
    "tokenizer.json, tokenizer_config.json and generation_config.json.\n"
    "--format gguf writes one GGUF v3 file for llama.cpp's architecture of the family with\n"
    "the tokenizer embedded (the text model only). Output is written under a\n"
    "temporary name and renamed when complete. Exit codes: 0 success, 1 runtime\n"
    "failure, 2 bad command line or input.";

at::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32") return at::kFloat;
  if (name == "bf16") return at::kBFloat16;
  if (name == "fp16") return at::kHalf;
  throw config::UsageError("--dtype: expected fp32, bf16 or fp16, got '" + name + "'");
}

}  // namespace

int main(int argc, char** argv) {
  std::string checkpoint, format, out, dtype = "fp32", tokenizer, max_shard = "5000000000";
  bool help = false, version = false;
  config::ArgParser args("muse-export",
                         "--checkpoint DIR --format hf|gguf --out PATH [--dtype fp32|bf16|fp16]",
                         kDescription);
  args.option("--checkpoint", "DIR", &checkpoint,
              "checkpoint directory, run directory (its LATEST), or hf:DIR (a Hugging Face "
              "model directory)");
  args.option("--format", "FORMAT", &format, "hf (a directory) or gguf (a file)");
  args.option("--out", "PATH", &out, "the directory (hf) or file (gguf) to write");
  args.option("--dtype", "DTYPE", &dtype, "fp32 (default), bf16 or fp16");
  args.option("--tokenizer", "FILE", &tokenizer,
              "tokenizer.json (default: the run's data.tokenizer)");
  args.option("--max-shard-bytes", "N", &max_shard,
              "hf: split the model into shards of at most N bytes (default 5000000000)");
  args.flag("--version", &version, "print the version and exit");
  args.flag("--help", &help, "print this help and exit");
  formats::ExportOptions options;
  try {
    args.parse(argc, argv);
    if (config::print_help_or_version(
            args, help, version,
            std::string("muse-export ") + MUSE_VERSION + " (commit " + MUSE_GIT_COMMIT + ")"))
      return 0;
    if (checkpoint.empty()) throw config::UsageError("--checkpoint is required");
    if (format != "hf" && format != "gguf")
      throw config::UsageError("--format: expected hf or gguf, got '" + format + "'");
    if (out.empty()) throw config::UsageError("--out is required");
    options.dtype = parse_dtype(dtype);
    options.max_shard_bytes = config::parse_int_option("--max-shard-bytes", max_shard, 1);
  } catch (const config::UsageError& e) {
    telemetry::log_error(std::string("muse-export: ") + e.what());
    return kExitUsage;
  }
  try {
    const auto start = std::chrono::steady_clock::now();
    const muse::SourceConfig run = muse::source_config(checkpoint, "--checkpoint");
    options.tokenizer = tokenizer.empty() ? run.cfg.data.tokenizer : tokenizer;
    options.tokens = run.cfg.data.tokens;
    // A Hugging Face directory is read whole; a checkpoint one tensor at a time.
    std::optional<checkpoints::Checkpoint> ckpt;
    std::optional<model::Model> model;
    std::optional<formats::ExportSource> source;
    if (checkpoint.starts_with("hf:")) {
      model.emplace(
          formats::load_model_from(checkpoint, "--checkpoint", run.cfg.model, 0, at::kCPU));
      source = formats::ExportSource::in_memory(*model, checkpoint.substr(3));
    } else {
      ckpt.emplace(formats::resolve_init_from(checkpoint, "--checkpoint"));
      source = formats::ExportSource::checkpoint(*ckpt);
    }
    const formats::ExportSummary s = format == "hf" ? formats::export_hf(*source, out, options)
                                                    : formats::export_gguf(*source, out, options);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "exported %s (step %lld) to %s: %lld tensors, %.1f MB of %s weights, %zu file(s), "
        "%.2f s\n",
        source->name().c_str(), static_cast<long long>(source->step()), out.c_str(),
        static_cast<long long>(s.tensors), static_cast<double>(s.bytes) / 1e6, dtype.c_str(),
        s.files.size(), seconds);
    return 0;
  } catch (const config::ConfigError& e) {
    telemetry::log_error(e.key() + ": " + e.what());
    return kExitUsage;
  } catch (const checkpoints::CheckpointError& e) {
    telemetry::log_error(e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    telemetry::log_error(e.what());
    return kExitFailure;
  }
}
