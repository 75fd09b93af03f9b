// Weights & Biases over its HTTP API, with libcurl (there is no C++ client):
// the run is created or resumed with the GraphQL UpsertBucket mutation, and
// history rows, the summary, console lines and system metrics go through the
// run's file_stream endpoint, with contiguous line offsets that a resumed run
// continues (RunResumeStatus); config.yaml and wandb-metadata.json go to the
// upload URLs of CreateRunFiles. Facts in
// ../shared/reference/formats.md §1; usage in docs/wandb.md.
//
// Training never waits for the network: records become history rows (one
// per step, evaluation keys under eval/NAME/...) appended to the run's spool
// file, runs/NAME/wandb-spool.jsonl, and a background thread sends what the
// server has not acknowledged, retrying with backoff (honouring Retry-After
// and 429). What could not be sent stays in the spool for the next launch or
// `muse-train wandb-sync RUN_DIR`.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "telemetry/metrics.h"
#include "telemetry/wandb_config.h"

namespace muse::telemetry {

// The server and the key: WANDB_BASE_URL (default https://api.wandb.ai) and
// WANDB_API_KEY, else the password of the base URL's host in ~/.netrc.
// The key is never printed or written to the run directory.
struct WandbEndpoint {
  std::string base_url;
  std::string api_key;
  // Throws std::runtime_error saying where the key was looked for.
  static WandbEndpoint from_environment();
};

// What the run is called and configured with on the server.
struct WandbRunInfo {
  WandbConfig config;
  std::string display_name;  // wandb.name, else run.name
  std::string job_type;      // the stage
  // The resolved muse-train config as (dotted key, YAML-formatted value).
  std::vector<std::pair<std::string, std::string>> run_config;
  // For the run's wandb-metadata.json: the command line and muse-train's
  // version line.
  std::vector<std::string> args;
  std::string version;
};

// The records of one run, on their way to W&B. Rank 0 only.
class WandbSink final : public MetricsSink {
 public:
  // Opens (or continues) the spool in `run_dir`; in online mode starts the
  // sender thread. Throws std::runtime_error when online mode has no key.
  WandbSink(const std::filesystem::path& run_dir, WandbRunInfo info);
  ~WandbSink() override;  // finish(1) if finish was not called

  void write(const Record& record) override;
  void flush() override;
  // The run was stopped by a preemption notice and will be resumed: the last
  // request says so ("preempting"), as the SDK's run.mark_preempting() does.
  void mark_preempting();
  // Ends the run: the last row is spooled, and online the sender gets up to
  // `timeout_s` to deliver everything and mark the run finished with
  // `exit_code`; what remains stays in the spool (a warning says so).
  void finish(int exit_code, double timeout_s = 60);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sends what the spool of `run_dir` holds and the server lacks, then marks
// the run finished with the exit code the spool recorded: the upload of an
// offline run or of one that could not reach the server. Returns the rows
// sent; throws std::runtime_error when the server cannot be reached within
// `timeout_s`.
int64_t wandb_sync(const std::filesystem::path& run_dir, double timeout_s = 300);

}  // namespace muse::telemetry
