// The `wandb.*` config section: logging a run to Weights & Biases over its
// HTTP API (docs/wandb.md).
#pragma once

#include <string>
#include <vector>

#include "config/schema.h"

namespace muse::telemetry {

struct WandbConfig {
  std::string mode = "disabled";
  std::string project = "muse-train";
  std::string entity;
  std::string group;
  std::string name;
  std::vector<std::string> tags;

  template <class V>
  void visit(V& v) {
    v.field("mode", mode,
            {.help = "online (send while training; unsent records wait in "
                     "runs/NAME/wandb-spool.jsonl), offline (spool only; upload later with "
                     "muse-train wandb-sync RUN_DIR), or disabled",
             .choices = {"online", "offline", "disabled"}});
    v.field("project", project, {.help = "W&B project"});
    v.field("entity", entity, {.help = "W&B entity (user or team); empty = the key's default"});
    v.field("group", group, {.help = "W&B run group (e.g. a sweep's name); empty = none"});
    v.field("name", name, {.help = "W&B display name; empty = run.name"});
    v.field("tags", tags, {.help = "W&B tags"});
  }
};

}  // namespace muse::telemetry
