// The pretraining and supervised fine-tuning loop: FSDP forward/backward over
// the packed batches of the loader, sharded AdamW, loss guards, metrics,
// periodic evaluation and checkpoints, resumable from the run directory.
// docs/trainer.md describes what a run does and writes.
#pragma once

#include "comm/communicator.h"
#include "telemetry/metrics.h"
#include "trainer/train_job.h"

namespace muse::trainer {

// Trains `job` to trainer.steps, continuing from the run directory's LATEST
// checkpoint when there is one, else from init_from's weights, else from the
// seeded initialisation. Collective over `comm`. Rank 0 writes records to
// `metrics` and the progress line to stdout. Throws TrainError,
// checkpoints::CheckpointError, data::DataError or config::ConfigError.
void train(const TrainJob& job, comm::Communicator& comm, telemetry::Metrics& metrics);

}  // namespace muse::trainer
