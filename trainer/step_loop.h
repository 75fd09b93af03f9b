// The outer loop every stage shares (pretraining, SFT, RL): steps to
// trainer.steps, a record and a progress line every telemetry.log_every
// steps, evaluation every eval.every steps and after the final step, a
// checkpoint every checkpoint.every steps and whenever a launch ends, and
// trainer.stop_after to end a launch early, and a checkpoint and exit when
// any rank was sent SIGTERM or SIGUSR1 (preemption.h). What a step, an
// evaluation or a checkpoint does is the stage's.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "telemetry/metrics.h"
#include "telemetry/telemetry_config.h"
#include "trainer/train_config.h"

namespace muse::trainer {

// (name, formatted value) pairs shown after the step counter.
using ProgressFields = std::vector<std::pair<std::string, std::string>>;

struct StepHooks {
  // Once, before the first step, when the run has steps left (may be empty).
  std::function<void()> on_start;
  // One step; returns its record, which holds an int64 "tokens".
  std::function<telemetry::Record()> step;
  std::function<ProgressFields(const telemetry::Record&)> progress;
  std::function<void()> evaluate;
  std::function<void()> save;
};

struct StepSchedule {
  int64_t steps = 1;
  int64_t stop_after = 0;
  int64_t log_every = 1;
  int64_t eval_every = 0;
  int64_t checkpoint_every = 1;
  std::string progress = "auto";  // telemetry.progress
};

StepSchedule step_schedule(const TrainerConfig& trainer, const CheckpointConfig& checkpoint,
                           const EvalConfig& eval, const telemetry::TelemetryConfig& telemetry);

// Runs steps from `step` (the steps done, advanced by hooks.step) to
// schedule.steps. Rank 0 writes the records to `metrics` and draws the
// progress line labelled `label`. A launch ended by stop_after saves but
// does not evaluate: it is not the end of the run. After each step the ranks
// agree whether one was signalled; if so the step is logged and saved and
// run_steps throws Preempted. Collective over `comm`.
void run_steps(const std::string& label, const int64_t& step, const StepSchedule& schedule,
               comm::Communicator& comm, telemetry::Metrics& metrics, const StepHooks& hooks);

}  // namespace muse::trainer
