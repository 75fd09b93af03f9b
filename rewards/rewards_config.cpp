#include "rewards/rewards_config.h"

#include "rewards/registry.h"

namespace muse::rewards {
namespace {

// Checks each field against its declared bounds and choices, as the loader
// does, so a config built in code gets the same errors as one read from YAML.
struct BoundsChecker {
  std::string prefix = "rewards";

  template <class T>
  void field(std::string_view name, T& value, const config::FieldSpec& spec) {
    config::check_value(config::join_key(prefix, name), spec, value);
  }
  template <class S>
  void section(std::string_view name, S& sub, std::string_view /*help*/) {
    const std::string outer = prefix;
    prefix = config::join_key(prefix, name);
    sub.visit(*this);
    prefix = outer;
  }
};

}  // namespace

void RewardsConfig::validate() const {
  BoundsChecker checker;
  RewardsConfig copy = *this;  // visit() is not const
  copy.visit(checker);
  make_length_term(length);  // throws for an unknown kind
  if (correctness.extract.empty()) {
    throw config::ConfigError("rewards.correctness.extract",
                              "lists no answer form (tags, boxed, hashes, last_number)");
  }
  if (length.budget_min > length.budget_max) {
    throw config::ConfigError("rewards.length.budget_min",
                              std::to_string(length.budget_min) +
                                  " is greater than rewards.length.budget_max (" +
                                  std::to_string(length.budget_max) + ")");
  }
  if (length.overlong_max_len > 0 && length.overlong_cache >= length.overlong_max_len) {
    throw config::ConfigError("rewards.length.overlong_cache",
                              std::to_string(length.overlong_cache) +
                                  " must be less than rewards.length.overlong_max_len (" +
                                  std::to_string(length.overlong_max_len) + ")");
  }
}

}  // namespace muse::rewards
