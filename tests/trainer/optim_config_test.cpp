// The optim.* config section: defaults, constraints, overrides.
#include "trainer/optim_config.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "config/loader.h"

namespace muse::trainer {
namespace {

struct Root {
  OptimConfig optim;
  template <class V>
  void visit(V& v) {
    v.section("optim", optim, "optimizer");
  }
};

OptimConfig load_with(const std::vector<std::string>& overrides) {
  return config::load<Root>(std::nullopt, overrides).config.optim;
}

TEST(OptimConfig, Defaults) {
  const OptimConfig c = load_with({});
  // Same as the section it replaces in apps/muse_config.h.
  EXPECT_DOUBLE_EQ(c.lr, 3e-4);
  EXPECT_DOUBLE_EQ(c.weight_decay, 0.1);
  EXPECT_EQ(c.schedule, "cosine");
  EXPECT_EQ(config::describe_fields<Root>().size(), 9u);
}

TEST(OptimConfig, Overrides) {
  const OptimConfig c = load_with({"optim.schedule=linear", "optim.beta2=0.999",
                                   "optim.warmup_steps=200", "optim.grad_clip=0"});
  EXPECT_EQ(c.schedule, "linear");
  EXPECT_DOUBLE_EQ(c.beta2, 0.999);
  EXPECT_EQ(c.warmup_steps, 200);
  EXPECT_DOUBLE_EQ(c.grad_clip, 0);
}

TEST(OptimConfig, RejectsOutOfRange) {
  for (const std::string bad :
       {"optim.lr=0", "optim.min_lr_ratio=1.5", "optim.min_lr_ratio=-0.1", "optim.warmup_steps=-1",
        "optim.schedule=step", "optim.beta1=1", "optim.beta2=1", "optim.beta1=-0.1", "optim.eps=0",
        "optim.weight_decay=-1", "optim.grad_clip=-1"}) {
    EXPECT_THROW(load_with({bad}), config::ConfigError) << bad;
  }
}

}  // namespace
}  // namespace muse::trainer
