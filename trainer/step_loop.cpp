#include "trainer/step_loop.h"

#include <unistd.h>

#include <iostream>
#include <optional>

#include "telemetry/log.h"
#include "telemetry/nvtx.h"
#include "telemetry/progress.h"
#include "trainer/preemption.h"

namespace muse::trainer {

StepSchedule step_schedule(const TrainerConfig& trainer, const CheckpointConfig& checkpoint,
                           const EvalConfig& eval, const telemetry::TelemetryConfig& telemetry) {
  return {.steps = trainer.steps,
          .stop_after = trainer.stop_after,
          .log_every = telemetry.log_every,
          .eval_every = eval.every,
          .checkpoint_every = checkpoint.every,
          .progress = telemetry.progress};
}

void run_steps(const std::string& label, const int64_t& step, const StepSchedule& schedule,
               comm::Communicator& comm, telemetry::Metrics& metrics, const StepHooks& hooks) {
  const int rank = comm.rank();
  if (step >= schedule.steps) {
    telemetry::log_info("run already complete at step " + std::to_string(step) +
                        " (trainer.steps); nothing to do");
    return;
  }
  if (hooks.on_start) hooks.on_start();
  std::optional<telemetry::ProgressLine> progress;
  if (rank == 0) {
    progress.emplace(label, schedule.steps,
                     telemetry::progress_mode(schedule.progress, ::isatty(STDOUT_FILENO) != 0),
                     std::cout, step);
  }
  const int64_t first_step = step;
  int64_t tokens_since_log = 0;
  while (step < schedule.steps) {
    const telemetry::Record record = [&] {
      // Numbered as the step's metrics record is (the steps done after it).
      const telemetry::NvtxRange range("step " + std::to_string(step + 1));
      return hooks.step();
    }();
    tokens_since_log += std::get<int64_t>(*record.find("tokens"));
    const int signal = agreed_preemption_signal(comm);
    const bool stop =
        (schedule.stop_after > 0 && step - first_step == schedule.stop_after) || signal != 0;
    const bool end_of_run = step == schedule.steps;
    if (step % schedule.log_every == 0 || end_of_run || stop) {
      if (rank == 0) {
        metrics.write(record);
        progress->update(step, tokens_since_log, hooks.progress(record));
      }
      tokens_since_log = 0;
    }
    // A signalled job has seconds left: it saves, it does not evaluate.
    if (schedule.eval_every > 0 && (step % schedule.eval_every == 0 || end_of_run) && signal == 0)
      hooks.evaluate();
    if (step % schedule.checkpoint_every == 0 || end_of_run || stop) hooks.save();
    if (signal != 0) {
      if (progress) progress->finish();
      throw Preempted(signal, step);
    }
    if (stop) {
      telemetry::log_info("stopping after " + std::to_string(schedule.stop_after) +
                          " steps (trainer.stop_after); the next launch resumes at step " +
                          std::to_string(step));
      break;
    }
  }
  if (progress) progress->finish();
}

}  // namespace muse::trainer
