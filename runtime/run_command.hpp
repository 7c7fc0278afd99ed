// `troupe run FILE`: load the pipeline, create the run folder, start the
// actors, show progress, forward SIGINT/SIGTERM as a cancel, and return the
// exit code (see running_order.hpp's exit_code).
#pragma once

#include <caf/expected.hpp>

#include <map>
#include <string>
#include <vector>

namespace troupe {

struct run_command_options {
  std::string pipeline;
  std::string output = "output/running_order";
  std::vector<std::string> enable;
  bool dry_run = false;
  std::string sample_interval = "1s";
  std::string grace = "5s";
  std::string db;        // store URL; empty: <output>/troupe.db
  bool no_db = false;    // run without a store (metadata.json only)
  std::vector<std::string> params;  // NAME=VALUE, one per --param
  int node_slots = 0;               // --node-slots: the local node's capacity (0: no limit)
  // troupe rerun RUN: `pipeline` is then the run's own file.
  std::string rerun;          // the run id (or a unique prefix); "" for troupe run
  std::string rerun_from;     // --from STAGE; "" = --failed
  bool allow_changed = false; // --allow-changed
  std::string reason;         // --reason
};

/// --param NAME=VALUE items as a map; an item without '=' or with an empty
/// name is an error naming it (a later item of the same name wins).
caf::expected<std::map<std::string, std::string>>
parse_param_args(const std::vector<std::string>& items);

int run_command(const run_command_options& opts);

/// The value `troupe cancel` queues with its SIGTERM to a local `troupe run`
/// (sigqueue), so that the run's reason names it rather than a bare signal.
inline constexpr int local_cancel_cookie = 0x7470636e;  // "tpcn"

} // namespace troupe
