#include "trainer/training_state.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstring>

#include "comm/agree.h"
#include "config/schema.h"
#include "formats/model_source.h"
#include "telemetry/log.h"

namespace muse::trainer {

at::Device pick_device(const TrainerConfig& cfg, int local_rank, const comm::Communicator& comm) {
  if (!uses_gpu(cfg, comm.backend())) return at::kCPU;
  if (!at::hasCUDA()) {
    throw config::ConfigError("trainer.device", "cuda, but this process sees no CUDA device");
  }
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

std::string cpu_rng_state() {
  const at::Tensor s = at::detail::getDefaultCPUGenerator().get_state();
  return {reinterpret_cast<const char*>(s.data_ptr<uint8_t>()), static_cast<size_t>(s.numel())};
}

void set_cpu_rng_state(const std::string& bytes) {
  const at::Tensor s = at::empty({static_cast<int64_t>(bytes.size())}, at::kByte);
  std::memcpy(s.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(s);
}

std::string unit_tensor_name(const FsdpUnit& unit, const std::string& what) {
  return checkpoints::unit_tensor_name(unit.layout.name, what);
}

TrainingState::TrainingState(const model::ModelConfig& cfg, uint64_t seed, comm::Communicator& comm,
                             const FsdpOptions& fsdp, const OptimConfig& optim)
    : comm_(comm), model_(cfg, seed, comm, fsdp), grad_clip_(optim.grad_clip) {
  const AdamWOptions adamw{.beta1 = optim.beta1,
                           .beta2 = optim.beta2,
                           .eps = optim.eps,
                           .weight_decay = optim.weight_decay};
  for (const FsdpUnit& unit : model_.units())
    optim_.emplace_back(decay_mask(unit.layout, unit.shards, comm.rank()).to(fsdp.device), adamw);
}

Update TrainingState::step(double loss, double lr, int64_t max_consecutive_skips,
                           int64_t step_number) {
  std::vector<at::Tensor> grads;
  for (const FsdpUnit& unit : model_.units())
    grads.push_back(unit.grad_valid(comm_.rank()));
  Update update{.norm = clip_grad_norm(grads, grad_clip_, comm_), .skipped = false};
  // loss and norm are the same on every rank, so every rank skips together.
  update.skipped = !std::isfinite(loss) || !update.norm.finite();
  if (!update.skipped) {
    consecutive_skips_ = 0;
    for (size_t u = 0; u < optim_.size(); ++u) {
      FsdpUnit& unit = model_.units()[u];
      optim_[u].step(unit.param, unit.grad, lr);
    }
    return update;
  }
  ++skipped_total_;
  if (++consecutive_skips_ >= max_consecutive_skips) {
    // Every rank stops here together; rank 0 says why.
    if (comm_.rank() != 0) throw comm::PeerFailure("stopped with rank 0");
    throw TrainError("step " + std::to_string(step_number) + ": loss or gradient norm not " +
                     "finite for " + std::to_string(consecutive_skips_) +
                     " steps in a row (trainer.max_consecutive_skips); lower optim.lr or "
                     "check the data");
  }
  telemetry::log_warning("step " + std::to_string(step_number) +
                         ": non-finite loss or gradient norm, update skipped");
  return update;
}

int64_t TrainingState::shard_bytes() const {
  int64_t bytes = model_.shard_bytes();
  for (const AdamWShard& o : optim_)
    bytes += o.state().exp_avg.nbytes() + o.state().exp_avg_sq.nbytes();
  return bytes;
}

void TrainingState::add_to_checkpoint(checkpoints::SaveRequest& request) const {
  const int rank = comm_.rank();
  for (size_t u = 0; u < optim_.size(); ++u) {
    const FsdpUnit& unit = model_.units()[u];
    const int64_t begin = unit.shards.begin(rank), valid = unit.shards.valid(rank);
    const AdamWState& s = optim_[u].state();
    request.tensors.push_back({unit_tensor_name(unit, "param"), unit.shards.numel, begin,
                               unit.param.narrow(0, 0, valid)});
    request.tensors.push_back({unit_tensor_name(unit, "exp_avg"), unit.shards.numel, begin,
                               s.exp_avg.narrow(0, 0, valid)});
    request.tensors.push_back({unit_tensor_name(unit, "exp_avg_sq"), unit.shards.numel, begin,
                               s.exp_avg_sq.narrow(0, 0, valid)});
  }
}

namespace {

// Adds the read of this rank's slice of "UNIT/what" into the real elements of
// `shard`, a live (S) fp32 shard of `unit`, and zeroes the shard's padding,
// without a fresh zero-filled buffer and a copy.
void add_shard_read(std::vector<checkpoints::ReadRequest>& reads, const FsdpUnit& unit,
                    const std::string& what, const at::Tensor& shard, int rank) {
  const int64_t valid = unit.shards.valid(rank);
  shard.narrow(0, valid, shard.numel() - valid).zero_();
  reads.push_back({.name = unit_tensor_name(unit, what),
                   .begin = unit.shards.begin(rank),
                   .out = shard.narrow(0, 0, valid)});
}

}  // namespace

void read_units(const checkpoints::Checkpoint& ckpt, const FsdpModel& model,
                const std::string& what, int rank) {
  at::NoGradGuard no_grad;
  std::vector<checkpoints::ReadRequest> reads;
  for (const FsdpUnit& unit : model.units())
    add_shard_read(reads, unit, what, unit.param, rank);
  ckpt.read(reads);
}

void TrainingState::load_weights(const checkpoints::Checkpoint& ckpt) {
  ckpt.check_model(model_.config());
  read_units(ckpt, model_, "param", comm_.rank());
}

std::string TrainingState::init_from(const std::string& from) {
  if (!from.starts_with("hf:")) {
    const checkpoints::Checkpoint ckpt(formats::resolve_init_from(from));
    load_weights(ckpt);
    return ckpt.dir().string() + " (step " + std::to_string(ckpt.step()) + ")";
  }
  const formats::HfWeights hf = formats::open_hf(from, "init_from", model_.config());
  const int rank = comm_.rank();
  at::NoGradGuard no_grad;
  for (FsdpUnit& unit : model_.units()) {
    // Rows the directory lacks (a projector it does not hold) keep their
    // initialisation: read into the current values.
    const at::Tensor shard = unit.param.narrow(0, 0, unit.shards.valid(rank)).to(at::kCPU).clone();
    hf.read_unit(unit.layout, unit.shards.begin(rank), shard);
    unit.param.narrow(0, 0, unit.shards.valid(rank)).copy_(shard);
  }
  return from +
         (hf.has_projector() ? "" : " (no image projector there: it keeps its initialisation)");
}

nlohmann::json TrainingState::counters() const {
  return {{"optimizer_steps", optimizer_steps()},
          {"skipped_total", skipped_total_},
          {"consecutive_skips", consecutive_skips_}};
}

void TrainingState::resume(const checkpoints::Checkpoint& ckpt, const nlohmann::json& train_state) {
  ckpt.check_model(model_.config());
  const int64_t optimizer_steps = train_state.at("optimizer_steps").get<int64_t>();
  at::NoGradGuard no_grad;
  // One batch: the reader takes the rank files front to back, once each.
  std::vector<checkpoints::ReadRequest> reads;
  const int rank = comm_.rank();
  for (size_t u = 0; u < optim_.size(); ++u) {
    const FsdpUnit& unit = model_.units()[u];
    const AdamWState& moments = optim_[u].state();
    add_shard_read(reads, unit, "param", unit.param, rank);
    add_shard_read(reads, unit, "exp_avg", moments.exp_avg, rank);
    add_shard_read(reads, unit, "exp_avg_sq", moments.exp_avg_sq, rank);
  }
  ckpt.read(reads);
  for (AdamWShard& optim : optim_)
    optim.set_step(optimizer_steps);
  skipped_total_ = train_state.at("skipped_total").get<int64_t>();
  consecutive_skips_ = train_state.at("consecutive_skips").get<int64_t>();
}

std::filesystem::path save_training(const TrainJob& job, int64_t step, const TrainingState& state,
                                    const nlohmann::json& stage_state,
                                    std::vector<checkpoints::ShardedTensor> more_tensors,
                                    comm::Communicator& comm) {
  nlohmann::json train_state = state.counters();
  train_state["stage"] = stage_name(job.stage);
  train_state["step"] = step;
  train_state.update(stage_state);
  checkpoints::SaveRequest request{.step = step,
                                   .model = job.model,
                                   .config_yaml = job.config_yaml,
                                   .train_state = train_state.dump(),
                                   .rank_state = cpu_rng_state(),
                                   .tensors = {}};
  state.add_to_checkpoint(request);
  for (checkpoints::ShardedTensor& t : more_tensors)
    request.tensors.push_back(std::move(t));
  const std::filesystem::path dir =
      checkpoints::save_checkpoint(job.run_dir, request, comm, job.checkpoint.keep);
  telemetry::log_info("checkpoint: " + dir.string());
  return dir;
}

nlohmann::json resume_training(const checkpoints::Checkpoint& ckpt, TrainingState& state,
                               comm::Communicator& comm) {
  nlohmann::json train_state = nlohmann::json::parse(ckpt.train_state());
  state.resume(ckpt, train_state);
  if (ckpt.world_size() == comm.size()) set_cpu_rng_state(ckpt.rank_state(comm.rank()));
  return train_state;
}

}  // namespace muse::trainer
