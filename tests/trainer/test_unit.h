// Units made of 1-d parameters of given sizes and weight-decay flags, for the
// optimizer tests (the id does not matter to them).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/layout.h"

namespace muse::trainer::testing {

inline model::UnitLayout unit_of(const std::string& name,
                                 const std::vector<std::pair<int64_t, bool>>& params) {
  model::UnitLayout unit{.name = name};
  for (const auto& [n, decay] : params) {
    unit.params.push_back({.id = model::ParamId::kAttnQ,
                           .row = &model::param_row(model::ParamId::kAttnQ),
                           .layer = 0,
                           .name = std::to_string(unit.params.size()),
                           .shape = {n},
                           .offset = unit.numel,
                           .numel = n,
                           .weight_decay = decay});
    unit.numel += n;
  }
  return unit;
}

}  // namespace muse::trainer::testing
