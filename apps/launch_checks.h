// What muse-train checks of a config before a stage starts, shared by a
// launch and by --plan, so that a plan runs the launch's own checks.
#pragma once

#include <cstddef>
#include <string>

#include "apps/muse_config.h"
#include "model/model_config.h"

namespace muse {

// The widest line of the start-up output: long config values are cut to fit.
constexpr size_t kStartupWidth = 120;

// "model: tiny preset, 1.31M parameters (2.69k in the image projector), 9.46M training FLOPs/token"
std::string model_summary(const model::ModelConfig& m);

// The stage's settings that depend on the world size, as a launch on
// `world_size` ranks checks them before it starts the communicator: for rl
// and aggregate a prompt set, prompts per step that split over the ranks, the
// advantage estimator, the length limits, adaptive evaluation and the
// aggregate stage's settings. Throws config::ConfigError naming the key.
void check_stage_config(const MuseConfig& cfg, int world_size);

// Opens the training data as rank `rank` of `world_size` would and checks it
// fits the model (vocabulary, image size and channels, the <image> token id);
// returns a summary of two lines. Throws data::DataError naming the shard at
// fault.
std::string check_training_data(const MuseConfig& cfg, int rank, int world_size);

}  // namespace muse
