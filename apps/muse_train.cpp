// muse-train: runs one stage of training from a YAML config.
//
//   muse-train --config configs/tiny/pretrain.yaml [--set key.path=value ...] [--dry-run]
//   muse-train --config configs/cluster/rl-1n-h100.yaml --plan [--world-size N]
//
// Exit codes: 0 success, 1 runtime failure, 2 bad command line or config,
// 3 stopped by SIGTERM/SIGUSR1 after saving a checkpoint.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include <ATen/Parallel.h>

#include "apps/config_plan.h"
#include "apps/launch_checks.h"
#include "apps/muse_config.h"
#include "checkpoints/checkpoint.h"
#include "comm/agree.h"
#include "comm/communicator.h"
#include "comm/self_check.h"
#include "comm/world.h"
#include "config/cli.h"
#include "config/files.h"
#include "config/loader.h"
#include "config/render.h"
#include "data/data_error.h"
#include "data/prompts.h"
#include "model/forward.h"
#include "model/linear.h"
#include "muse/version.h"
#include "rl/aggregate_loop.h"
#include "rl/rl_loop.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"
#include "telemetry/progress.h"
#include "telemetry/wandb.h"
#include "trainer/memory_meter.h"
#include "trainer/memory_plan.h"
#include "trainer/preemption.h"
#include "trainer/pretrain.h"

namespace {

using muse::check_stage_config;
using muse::check_training_data;
using muse::kStartupWidth;
using muse::model_summary;
using muse::MuseConfig;
namespace checkpoints = muse::checkpoints;
namespace config = muse::config;
namespace data = muse::data;
namespace comm = muse::comm;
namespace model = muse::model;
namespace rl = muse::rl;
namespace telemetry = muse::telemetry;
namespace trainer = muse::trainer;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

const char* kDescription =
    "Trains the muse multimodal transformer. The config's `stage` picks the loop\n"
    "(pretrain, sft, rl, aggregate); every key below can be set in the YAML file or\n"
    "overridden with --set key.path=value (repeatable, applied in order after the\n"
    "file). Run under mpirun or srun for several ranks. SIGTERM or SIGUSR1 (a\n"
    "scheduler's preemption notice) ends the run after the current step with a\n"
    "checkpoint; the same command resumes it. Exit codes: 0 success, 1 runtime\n"
    "failure, 2 bad command line or config, 3 stopped by a signal (checkpoint saved).\n"
    "`muse-train wandb-sync RUN_DIR` uploads a run's Weights & Biases spool.";

std::string version_text() {
  return std::string("muse-train ") + MUSE_VERSION + " (commit " + MUSE_GIT_COMMIT + ", LibTorch " +
         MUSE_TORCH_VERSION + ", backends: mpi" + (comm::has_nccl() ? ", nccl" : "") + ")";
}

std::string world_summary(const comm::World& w, std::string_view backend) {
  std::ostringstream s;
  s << "world: " << w.size << " rank(s) on " << w.n_nodes << " node(s), launcher " << w.launcher
    << ", backend " << backend;
  return s.str();
}

// Library messages (LibTorch's among them) may span lines; the report is one.
void log_first_line(const std::exception& e) {
  const std::string message = e.what();
  telemetry::log_error(message.substr(0, message.find('\n')));
}

// True on every rank when `failed` is true on any rank.
bool any_rank(comm::Communicator& comm, bool failed) {
  const at::Tensor flag = at::full({1}, failed ? 1 : 0, at::kLong);
  comm.all_reduce(flag, comm::ReduceOp::kMax);
  return flag.item<int64_t>() != 0;
}

std::filesystem::path run_dir_of(const MuseConfig& cfg) {
  return std::filesystem::path(cfg.run.dir) / cfg.run.name;
}

// The stage's loop (pretraining and SFT: the trainer's; rl and aggregate:
// rl/'s), with rank 0 writing metrics.jsonl.
void run_training(const MuseConfig& cfg, const std::vector<std::string>& command_line,
                  const comm::World& world, comm::Communicator& comm) {
  trainer::set_cpu_block_cache(cfg.trainer.cpu_block_cache);
  const trainer::TrainJob job{.stage = cfg.run_stage(),
                              .seed = static_cast<uint64_t>(cfg.seed),
                              .run_dir = run_dir_of(cfg),
                              .init_from = cfg.init_from,
                              .config_yaml = config::to_yaml(cfg),
                              .model = cfg.model,
                              .data = cfg.data,
                              .trainer = cfg.trainer,
                              .optim = cfg.optim,
                              .checkpoint = cfg.checkpoint,
                              .eval = cfg.eval,
                              .eval_rule = trainer::eval_answer_rule(
                                  cfg.eval, cfg.run_stage(), cfg.rewards.correctness.rule()),
                              .telemetry = cfg.telemetry,
                              .local_rank = world.local_rank};
  telemetry::Metrics metrics;
  telemetry::WandbSink* wandb = nullptr;  // owned by metrics; rank 0 only
  comm::run_agreed(comm, [&] {
    if (!world.is_main()) return;
    const std::string path = (job.run_dir / "metrics.jsonl").string();
    // A resumed run writes the steps after its checkpoint again; without a
    // checkpoint to resume from it starts over, from step 0's evaluations.
    const std::filesystem::path latest = checkpoints::latest_checkpoint(job.run_dir);
    telemetry::drop_records_after(path,
                                  latest.empty() ? -1 : checkpoints::Checkpoint(latest).step());
    metrics.add_sink(std::make_unique<telemetry::JsonlSink>(path));
    if (cfg.wandb.mode == "disabled") return;
    telemetry::WandbRunInfo info{
        .config = cfg.wandb,
        .display_name = cfg.wandb.name.empty() ? cfg.run.name : cfg.wandb.name,
        .job_type = cfg.stage,
        .run_config = {},
        .args = command_line,
        .version = version_text()};
    for (const config::FieldInfo& f : config::describe_fields(cfg))
      info.run_config.emplace_back(f.path, f.value);
    auto sink = std::make_unique<telemetry::WandbSink>(job.run_dir, std::move(info));
    wandb = sink.get();
    metrics.add_sink(std::move(sink));
  });
  // W&B learns how the run ended: 0, 3 (preempted), 2 (config) or 1.
  try {
    const rl::RlJob rl_job{.base = job,
                           .rl = cfg.rl,
                           .rewards = cfg.rewards,
                           .aggregate = cfg.aggregate,
                           .adaptive = cfg.adaptive};
    switch (job.stage) {
      case trainer::Stage::kPretrain:
      case trainer::Stage::kSft:
        trainer::train(job, comm, metrics);
        break;
      case trainer::Stage::kRl:
        rl::train_rl(rl_job, comm, metrics);
        break;
      case trainer::Stage::kAggregate:
        rl::train_aggregator(rl_job, comm, metrics);
        break;
    }
  } catch (const trainer::Preempted&) {
    if (wandb) {
      wandb->mark_preempting();
      wandb->finish(trainer::kExitPreempted);
    }
    throw;
  } catch (const config::ConfigError&) {
    if (wandb) wandb->finish(kExitUsage);
    throw;
  } catch (...) {
    if (wandb) wandb->finish(kExitFailure);
    throw;
  }
  if (wandb) wandb->finish(0);
}

// `muse-train wandb-sync RUN_DIR`: uploads a run's W&B spool.
int wandb_sync_command(int argc, char** argv) {
  if (argc != 3 || std::string(argv[2]).starts_with("-")) {
    telemetry::log_error("usage: muse-train wandb-sync RUN_DIR");
    return kExitUsage;
  }
  try {
    const int64_t rows = telemetry::wandb_sync(argv[2]);
    std::cout << "wandb-sync: " << rows << " row(s) uploaded from " << argv[2] << "\n";
    return 0;
  } catch (const std::exception& e) {
    telemetry::log_error(e.what());
    return kExitFailure;
  }
}

// Ranks on one node share its cores: unless OMP_NUM_THREADS says otherwise,
// each rank's LibTorch thread pool gets cores / ranks-per-node threads
// instead of every rank starting one thread per core (as torchrun does).
void share_cores(const comm::World& world) {
  if (world.local_size <= 1 || std::getenv("OMP_NUM_THREADS") != nullptr) return;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int threads = std::max(1, cores / world.local_size);
  at::set_num_threads(threads);
  if (world.is_main()) {
    telemetry::log_info(std::to_string(world.local_size) + " ranks share " + std::to_string(cores) +
                        " cores: " + std::to_string(threads) +
                        " compute thread(s) per rank (set OMP_NUM_THREADS to choose)");
  }
}

// Holds an exclusive lock on DIR/.lock for the rest of the process (the
// kernel drops it at exit, a crash included): a second launch on a run
// directory in use would interleave its checkpoints and records with the
// first's (a relaunch started before a preempted launch finished its last
// checkpoint). The file names the holder for the error.
void lock_run_dir(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    if (fd >= 0 && error == EWOULDBLOCK) {
      char holder[256] = {};
      const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
      std::string who(holder, n > 0 ? static_cast<size_t>(n) : 0);
      while (!who.empty() && who.back() == '\n')
        who.pop_back();
      throw std::runtime_error(dir.string() + ": the run directory is in use by another launch (" +
                               (who.empty() ? std::string("holder unknown") : who) +
                               "); wait for it to end, or choose another run.name");
    }
    if (fd >= 0) ::close(fd);
    telemetry::log_warning(path.string() + ": cannot lock (" + std::strerror(error) +
                           "): a second launch on this run directory would not be stopped");
    return;
  }
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const std::string holder = "pid " + std::to_string(::getpid()) + " on " + host + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, holder.data(), holder.size(), 0) < 0)
    telemetry::log_warning(path.string() + ": cannot record the lock's holder");
  // The descriptor stays open: closing it would release the lock.
}

// Creates run.dir/run.name, locks it for this launch and writes the
// resolved config there (rank 0).
std::filesystem::path prepare_run_dir(const MuseConfig& cfg) {
  const std::filesystem::path dir = run_dir_of(cfg);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    throw std::runtime_error(dir.string() + ": cannot create run directory (" + ec.message() + ")");
  lock_run_dir(dir);
  config::write_file_atomic(dir / "config.yaml",
                            "# resolved by " + version_text() + "\n" + config::to_yaml(cfg));
  return dir;
}

void print_self_check(const std::vector<comm::SelfCheckRow>& rows) {
  std::ostringstream s;
  s << "communicator self-check passed (" << rows.size() << " collectives):\n";
  for (const auto& r : rows) {
    char line[160];
    std::snprintf(line, sizeof line, "  %-20s %-9s %10lld B sent %9.3f ms", r.collective.c_str(),
                  r.dtype.c_str(), static_cast<long long>(r.wire_bytes), r.seconds * 1e3);
    s << line << "\n";
  }
  telemetry::log_info(s.str());
}

// `--help-config FORMAT`: the config reference, as text or as docs/config.md.
int print_config_reference(const std::string& format) {
  if (format == "text") {
    std::cout << config::render_help(config::describe_fields<MuseConfig>());
    return 0;
  }
  if (format == "markdown") {
    std::cout << config::render_markdown(
        config::describe_sections<MuseConfig>(), config::describe_fields<MuseConfig>(),
        "Config reference",
        "Generated by `muse-train --help-config markdown` from the declarations in the\n"
        "source; do not edit by hand. Every key can be set in a YAML config or with\n"
        "`--set key.path=value`.");
    return 0;
  }
  telemetry::log_error("--help-config: unknown format '" + format +
                       "' (expected text or markdown)");
  return kExitUsage;
}

int run(int argc, char** argv) {
  const std::vector<std::string> command_line(argv, argv + argc);  // before MPI edits argv
  std::string config_path;
  std::vector<std::string> overrides;
  bool help = false, version = false, dry_run = false, print_config = false, plan = false;
  std::string help_config, world_size;
  config::ArgParser args(
      "muse-train", "--config FILE [--set key.path=value ...] [--dry-run | --plan]", kDescription);
  args.option("--config", "FILE", &config_path, "YAML config to run (see configs/)");
  args.repeated("--set", "KEY=VALUE", &overrides,
                "override one config key, e.g. --set trainer.steps=10");
  args.flag("--dry-run", &dry_run,
            "resolve the config, start the communicator, check every collective across ranks, "
            "write the run directory's config.yaml, then stop");
  args.flag("--plan", &plan,
            "check the config for a launch on plan.world_size ranks (or --world-size) from this "
            "one process: the resolved config, memory and FLOPs per rank and every error; nothing "
            "is started or written, no GPU is needed, and inputs absent here are warnings");
  args.option("--world-size", "N", &world_size,
              "with --plan: the ranks to plan for, instead of the config's plan.world_size");
  args.flag("--print-config", &print_config,
            "print the resolved config as YAML and exit (nothing is started or written)");
  args.option("--help-config", "FORMAT", &help_config,
              "print the config reference as 'text' or 'markdown' (docs/config.md)");
  args.flag("--version", &version, "print the version and exit");
  args.flag("--help", &help, "print this help and exit");

  if (argc >= 2 && std::string(argv[1]) == "wandb-sync") return wandb_sync_command(argc, argv);
  try {
    args.parse(argc, argv);
  } catch (const config::UsageError& e) {
    telemetry::log_error(e.what());
    return kExitUsage;
  }
  if (help) {
    std::cout << args.usage() << "\nconfig keys:\n"
              << config::render_help(config::describe_fields<MuseConfig>());
    return 0;
  }
  if (version) {
    std::cout << version_text() << "\n";
    return 0;
  }
  if (!help_config.empty()) return print_config_reference(help_config);
  if (config_path.empty()) {
    telemetry::log_error("--config FILE is required (see muse-train --help)");
    return kExitUsage;
  }

  int64_t plan_world_size = 0;  // 0: the config's plan.world_size
  try {
    if (!world_size.empty()) {
      if (!plan) throw config::UsageError("--world-size: only with --plan");
      plan_world_size = config::parse_int_option("--world-size", world_size, 1);
    }
    if (plan && dry_run) throw config::UsageError("--plan and --dry-run: choose one");
  } catch (const config::UsageError& e) {
    telemetry::log_error(e.what());
    return kExitUsage;
  }
  if (plan) return muse::plan_config(config_path, overrides, plan_world_size, version_text());

  if (print_config) {
    try {
      std::cout << config::to_yaml(config::load<MuseConfig>(config_path, overrides).config);
    } catch (const config::ConfigError& e) {
      telemetry::log_error(e.what());
      return kExitUsage;
    }
    return 0;
  }

  const auto session = comm::Session::start(&argc, &argv);
  const comm::World& world = session->world();
  telemetry::set_log_rank(world.rank, world.size);

  // Every rank reads the same files and fails the same way; rank 0 reports.
  config::Loaded<MuseConfig> loaded;
  try {
    loaded = config::load<MuseConfig>(config_path, overrides);
  } catch (const config::ConfigError& e) {
    if (world.is_main()) telemetry::log_error(e.what());
    return kExitUsage;
  }
  const MuseConfig& cfg = loaded.config;
  // Online W&B needs a key, which is not in the config: checked before the
  // run directory is made.
  if (cfg.wandb.mode == "online" && !dry_run) {
    try {
      (void)telemetry::WandbEndpoint::from_environment();
    } catch (const std::runtime_error& e) {
      if (world.is_main()) telemetry::log_error(config_path + ": wandb.mode: " + e.what());
      return kExitUsage;
    }
  }

  // A checkpoint to start from must exist before anything is read from it:
  // without it the text format and the architecture would be this config's
  // defaults, and their errors would name the wrong cause. A run that resumes
  // from its own checkpoint no longer reads init_from.
  if (!cfg.init_from.empty() && !cfg.init_from.starts_with("hf:") &&
      checkpoints::latest_checkpoint(run_dir_of(cfg)).empty()) {
    try {
      (void)checkpoints::resolve_checkpoint(cfg.init_from);
    } catch (const checkpoints::CheckpointError& e) {
      if (world.is_main()) telemetry::log_error(config_path + ": init_from: " + e.what());
      return kExitUsage;
    }
  }
  try {
    (void)data::check_text_format(cfg.data);  // the stage opens its own
  } catch (const config::ConfigError& e) {
    if (world.is_main()) telemetry::log_error(config_path + ": " + e.key() + ": " + e.what());
    return kExitUsage;
  }

  // Settings that depend on the world size: every rank decides alike.
  try {
    check_stage_config(cfg, world.size);
  } catch (const config::ConfigError& e) {
    if (world.is_main()) telemetry::log_error(config_path + ": " + e.key() + ": " + e.what());
    return kExitUsage;
  }

  telemetry::log_info(version_text());
  telemetry::log_info(config::render_table(
      config::describe_fields(cfg), loaded.origins, kStartupWidth,
      "values cut with … are whole in " + (run_dir_of(cfg) / "config.yaml").string()));
  telemetry::log_info(model_summary(cfg.model));
  if (world.is_main()) {
    for (const auto& warning : cfg.likely_mistakes())
      telemetry::log_warning(warning);
  }

  comm::CommOptions comm_options;
  comm_options.timeout =
      std::chrono::milliseconds(static_cast<int64_t>(cfg.dist.collective_timeout_s * 1000));
  comm_options.verify = cfg.dist.verify_collectives;
  std::unique_ptr<comm::Communicator> comm;
  try {
    comm = comm::make_communicator(*session, cfg.dist.backend, comm_options);
  } catch (const comm::DistError& e) {
    telemetry::log_error(std::string("dist.backend: ") + e.what());
    return kExitFailure;
  }
  telemetry::log_info(world_summary(world, comm->backend()));
  share_cores(world);
  try {
    telemetry::log_info("CPU matrix products: " + model::cpu_matmul_summary());
  } catch (const model::ModelError& e) {
    telemetry::log_error(e.what());
    return kExitUsage;
  }
  trainer::install_preemption_handlers();

  try {
    std::string run_dir_error;
    if (world.is_main()) {
      try {
        telemetry::log_info("run directory: " + prepare_run_dir(cfg).string());
      } catch (const std::exception& e) {
        run_dir_error = e.what();
      }
    }
    if (any_rank(*comm, !run_dir_error.empty())) {
      if (world.is_main()) telemetry::log_error(run_dir_error);
      return kExitFailure;
    }

    if (dry_run) {
      print_self_check(comm::run_self_check(*comm, 1024));
      if (!trainer::is_rl_stage(cfg.run_stage())) {
        // Every rank opens the data; the lowest rank that could not says
        // why (one line, though every rank may find the same bad shard).
        std::string summary;
        try {
          comm::run_agreed(*comm,
                           [&] { summary = check_training_data(cfg, world.rank, world.size); });
        } catch (const data::DataError& e) {
          telemetry::log_error(e.what());
          return kExitUsage;
        } catch (const comm::PeerFailure&) {
          return kExitUsage;
        }
        telemetry::log_info(summary);
        telemetry::log_info(trainer::format_memory_plan(
            cfg.model, trainer::plan_inputs(cfg.trainer, cfg.data.batch_size, cfg.data.seq_len,
                                            world.size, comm->backend())));
      }
      telemetry::log_info("dry run complete: config valid, " + std::to_string(world.size) +
                          " rank(s) communicate; stage '" + cfg.stage + "' not started");
    } else {
      run_training(cfg, command_line, world, *comm);
    }
  } catch (const trainer::Preempted& e) {
    if (world.is_main()) telemetry::log_info(e.what());
    return trainer::kExitPreempted;
  } catch (const comm::PeerFailure& e) {
    // The rank that failed has said why; every rank ends with its status.
    return e.config_error() ? kExitUsage : kExitFailure;
  } catch (const config::ConfigError& e) {
    const std::string what = e.what();
    // Errors raised while running name their key unless the message does.
    telemetry::log_error(e.key().empty() || what.starts_with(e.key()) ? what
                                                                      : e.key() + ": " + what);
    return kExitUsage;
  } catch (const comm::DistError& e) {
    // A collective failed or timed out: ranks may now disagree about what
    // comes next, so end the whole job rather than hang.
    telemetry::log_error(e.what());
    session->abort(kExitFailure);
  } catch (const std::exception& e) {
    // Reported here, before the session ends: once this rank finalizes MPI,
    // the launcher may stop the others. A failure another rank caused is
    // that rank's to report.
    if (dynamic_cast<const checkpoints::PeerCheckpointError*>(&e) == nullptr) log_first_line(e);
    return kExitFailure;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any tensor exists, so metrics can report the peak of CPU tensors.
  muse::trainer::track_cpu_memory();
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    log_first_line(e);
    return kExitFailure;
  }
}
