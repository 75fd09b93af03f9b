// adamw_tool DIR: runs AdamWShard on a small unit for a few steps in several
// hyper-parameter cases and writes, per case, DIR/CASE/{init,grads,param,
// exp_avg,exp_avg_sq}.bin (raw little-endian float32) and DIR/CASE/case.json
// (the hyper-parameters, per-step learning rates and parameter table).
// adamw_compat.py replays the same data through torch.optim.AdamW.
//
// Legend: n unit numel, K steps.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <bit>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "tests/trainer/test_unit.h"
#include "trainer/adamw.h"
#include "trainer/lr_schedule.h"

namespace fs = std::filesystem;
using namespace muse;
using namespace muse::trainer;

static_assert(std::endian::native == std::endian::little, "the .bin files are little-endian");

namespace {

constexpr int kSteps = 20;  // K

struct Case {
  std::string name;
  AdamWOptions options;
  LrSchedule schedule;
};

model::UnitLayout compat_unit() {
  return testing::unit_of("compat", {{96, true}, {12, false}, {257, true}, {1, false}, {40, true}});
}

void write_tensor(const fs::path& path, const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

void run_case(const fs::path& dir, const Case& c, const model::UnitLayout& unit) {
  fs::create_directories(dir);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(42);
  const at::Tensor init = at::randn({unit.numel}, gen, at::kFloat);  // (n)
  // Gradients of varied scale, some exactly zero, so m and v see a range.
  const at::Tensor grads = at::randn({kSteps, unit.numel}, gen, at::kFloat)  // (K, n)
                               .mul_(at::logspace(-3, 1, kSteps).unsqueeze(1).to(at::kFloat));
  grads.select(0, 3).narrow(0, 0, 50).zero_();

  const UnitShards s = shard_unit(unit.numel, 1, 1);
  AdamWShard opt(decay_mask(unit, s, 0), c.options);
  const at::Tensor param = init.clone();
  std::string lrs;
  for (int t = 0; t < kSteps; ++t) {
    const double lr = c.schedule(t);
    opt.step(param, grads[t].contiguous(), lr);
    lrs += (t ? ", " : "") + number(lr);
  }
  write_tensor(dir / "init.bin", init);
  write_tensor(dir / "grads.bin", grads);
  write_tensor(dir / "param.bin", param);
  write_tensor(dir / "exp_avg.bin", opt.state().exp_avg);
  write_tensor(dir / "exp_avg_sq.bin", opt.state().exp_avg_sq);

  std::ofstream json(dir / "case.json");
  json << "{\"steps\": " << kSteps << ", \"numel\": " << unit.numel
       << ", \"beta1\": " << number(c.options.beta1) << ", \"beta2\": " << number(c.options.beta2)
       << ", \"eps\": " << number(c.options.eps)
       << ", \"weight_decay\": " << number(c.options.weight_decay) << ", \"lr\": [" << lrs
       << "], \"params\": [";
  for (size_t i = 0; i < unit.params.size(); ++i) {
    const model::ParamSpec& p = unit.params[i];
    json << (i ? ", " : "") << "{\"offset\": " << p.offset << ", \"numel\": " << p.numel
         << ", \"weight_decay\": " << (p.weight_decay ? "true" : "false") << "}";
  }
  json << "]}\n";
  if (!json) throw std::runtime_error("cannot write " + (dir / "case.json").string());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: adamw_tool DIR\n";
    return 2;
  }
  const model::UnitLayout unit = compat_unit();
  const LrSchedule warmup_cosine{.peak_lr = 1e-2,
                                 .min_lr_ratio = 0.1,
                                 .warmup_steps = 5,
                                 .total_steps = kSteps,
                                 .decay = LrDecay::kCosine};
  const std::vector<Case> cases = {
      {"llm", {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1}, warmup_cosine},
      {"torch_defaults",
       {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01},
       {.peak_lr = 1e-3, .decay = LrDecay::kConstant}},
      {"no_decay_small_beta",
       {.beta1 = 0.3, .beta2 = 0.5, .eps = 1e-4, .weight_decay = 0},
       warmup_cosine},
      {"strong_decay",
       {.beta1 = 0.0, .beta2 = 0.9, .eps = 1e-6, .weight_decay = 2.0},
       {.peak_lr = 0.1, .warmup_steps = 3, .total_steps = kSteps, .decay = LrDecay::kLinear}},
  };
  try {
    for (const Case& c : cases)
      run_case(fs::path(argv[1]) / c.name, c, unit);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
