// The muse-train side of bench/checkpoint/run.sh: builds the training state
// the trainer saves (trainer::TrainingState: every unit's fp32 weights and
// AdamW moments, after one optimizer step on random gradients), then serves
// commands read from stdin, one per line, printing one JSON line each, so
// that the driver can run dd between them:
//
//   save   RUN_DIR/checkpoints/step_N into an emptied RUN_DIR, as the trainer
//          saves (save_checkpoint with its request: weights and moments,
//          train state, RNG state, config), timed (wall and this thread's
//          CPU) from building the request to the return (fsync, rename and
//          LATEST included)
//   load   what the trainer's resume reads: open the checkpoint, read every
//          unit's param, exp_avg and exp_avg_sq (CRC-32C checked) through
//          TrainingState::resume, and the rank state; timed likewise. The
//          state is zeroed before (untimed) and compared with the saved
//          values after (untimed), so the load really restores it.
//   profile  in memory, no I/O: seconds of CRC-32C and of memcpy over the
//          state's bytes (best of 3), to split the save and load times.
//
//   checkpoint_bench --dir RUN_DIR [--preset small] [--layers N]
//
// --layers overrides the preset's layer count, to scale the state's size.
// One rank (the solo communicator), so the file is the whole state.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "comm/solo_communicator.h"
#include "config/crc32c.h"
#include "model/model_config.h"
#include "trainer/training_state.h"

namespace {

namespace fs = std::filesystem;
using muse::trainer::TrainingState;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU time of the calling thread so far: it moves little with the load of
// other processes, unlike wall time, and leaves out intra-op threads that
// spin while they wait for work.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

int64_t directory_bytes(const fs::path& dir) {
  int64_t bytes = 0;
  for (const fs::directory_entry& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) bytes += static_cast<int64_t>(e.file_size());
  return bytes;
}

// This rank's slices of every checkpoint tensor (views of the live state).
std::vector<at::Tensor> state_tensors(const TrainingState& state) {
  muse::checkpoints::SaveRequest request;
  state.add_to_checkpoint(request);
  std::vector<at::Tensor> out;
  for (const auto& t : request.tensors)
    out.push_back(t.data);
  return out;
}

class Bench {
 public:
  Bench(fs::path run_dir, const muse::model::ModelConfig& cfg)
      : run_dir_(std::move(run_dir)), cfg_(cfg), state_(cfg, 1234, comm_, {}, {}) {
    // One optimizer step on random gradients: moments as a trainer saves them,
    // not zeros.
    for (auto& unit : state_.model().units())
      unit.grad_valid(0).normal_(0, 1e-3);
    state_.step(1.0, 1e-3, 1, 1);
    for (const at::Tensor& t : state_tensors(state_))
      saved_.push_back(t.clone());
  }

  json describe() const {
    int64_t numel = 0;
    for (const at::Tensor& t : saved_)
      numel += t.numel();
    return {{"op", "ready"},       {"preset", cfg_.preset},    {"n_layers", cfg_.n_layers},
            {"params", numel / 3}, {"tensors", saved_.size()}, {"tensor_bytes", numel * 4}};
  }

  json save() {
    // A fresh directory each time, as dd writes a fresh file: no pruning of
    // the previous checkpoint inside the timed call.
    fs::remove_all(run_dir_);
    ++step_;
    const double cpu = cpu_seconds();
    const auto start = Clock::now();
    muse::checkpoints::SaveRequest request{
        .step = step_,
        .model = cfg_,
        .config_yaml = "stage: pretrain\nmodel:\n  preset: " + cfg_.preset + "\n",
        .train_state = train_state().dump(),
        .rank_state = muse::trainer::cpu_rng_state(),
        .tensors = {}};
    state_.add_to_checkpoint(request);
    dir_ = muse::checkpoints::save_checkpoint(run_dir_, request, comm_, 1);
    const double seconds = seconds_since(start);
    return {{"op", "save"},
            {"seconds", seconds},
            {"cpu_seconds", cpu_seconds() - cpu},
            {"bytes", directory_bytes(dir_)},
            {"dir", dir_.string()}};
  }

  // What save_training records for a pretraining step.
  json train_state() const {
    json state = state_.counters();
    state["stage"] = "pretrain";
    state["step"] = step_;
    return state;
  }

  json profile() const {
    double crc = 1e30, copy = 1e30;
    int64_t bytes = 0;
    for (int rep = 0; rep < 3; ++rep) {
      auto start = Clock::now();
      bytes = 0;
      for (const at::Tensor& t : saved_) {
        muse::config::crc32c(t.data_ptr(), t.nbytes());
        bytes += static_cast<int64_t>(t.nbytes());
      }
      crc = std::min(crc, seconds_since(start));
      std::vector<at::Tensor> copies;
      for (const at::Tensor& t : saved_)
        copies.push_back(at::empty_like(t));
      start = Clock::now();
      for (size_t i = 0; i < saved_.size(); ++i)
        std::memcpy(copies[i].data_ptr(), saved_[i].data_ptr(), saved_[i].nbytes());
      copy = std::min(copy, seconds_since(start));
    }
    return {{"op", "profile"}, {"bytes", bytes}, {"crc_seconds", crc}, {"copy_seconds", copy}};
  }

  json load() {
    for (const at::Tensor& t : state_tensors(state_))
      t.zero_();
    const double cpu = cpu_seconds();
    const auto start = Clock::now();
    const muse::checkpoints::Checkpoint ckpt(dir_);
    (void)muse::trainer::resume_training(ckpt, state_, comm_);
    const double seconds = seconds_since(start);
    const std::vector<at::Tensor> loaded = state_tensors(state_);
    bool same = loaded.size() == saved_.size();
    for (size_t i = 0; same && i < loaded.size(); ++i)
      same = at::equal(loaded[i], saved_[i]);
    return {{"op", "load"},
            {"seconds", seconds},
            {"cpu_seconds", cpu_seconds() - cpu},
            {"bytes", directory_bytes(dir_)},
            {"same", same}};
  }

 private:
  fs::path run_dir_;
  muse::model::ModelConfig cfg_;
  muse::comm::SoloCommunicator comm_;
  TrainingState state_;
  std::vector<at::Tensor> saved_;  // copies of the state after the step
  int64_t step_ = 0;
  fs::path dir_;  // the last checkpoint saved
};

}  // namespace

int main(int argc, char** argv) {
  try {
    fs::path dir;
    std::string preset = "small";
    int64_t layers = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string flag = argv[i], value = argv[i + 1];
      if (flag == "--dir") {
        dir = value;
      } else if (flag == "--preset") {
        preset = value;
      } else if (flag == "--layers") {
        layers = std::stoll(value);
      } else {
        throw std::invalid_argument("unknown flag " + flag);
      }
    }
    if (dir.empty()) throw std::invalid_argument("--dir is required");
    muse::model::ModelConfig cfg = muse::model::preset_config(preset);
    if (layers > 0) cfg.n_layers = layers;
    Bench bench(dir, cfg);
    std::cout << bench.describe().dump() << std::endl;
    for (std::string command; std::getline(std::cin, command);) {
      if (command == "save") {
        std::cout << bench.save().dump() << std::endl;
      } else if (command == "load") {
        std::cout << bench.load().dump() << std::endl;
      } else if (command == "profile") {
        std::cout << bench.profile().dump() << std::endl;
      } else {
        throw std::invalid_argument("unknown command '" + command + "' (save, load or profile)");
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "checkpoint_bench: " << e.what() << '\n';
    return 1;
  }
}
