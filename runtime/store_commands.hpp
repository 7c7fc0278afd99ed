// `troupe runs`, `troupe show RUN_ID`, `troupe events RUN_ID`: read the
// store; tables for people by default, `--json` for machines.
// `troupe recover`: reconciles the unfinished runs whose owner is lost.
#pragma once

#include <string>

namespace troupe {

struct store_command_options {
  std::string db;          // store URL; empty: <output>/troupe.db
  std::string output = "output/running_order";
  std::string status;      // runs: only this status
  std::string pipeline;    // runs: only this pipeline
  int limit = 20;          // runs
  std::string run_id;      // show, events: an id or a unique prefix
  std::string level = "info";  // events: the lowest level shown
  bool json = false;
};

int runs_command(const store_command_options& opts);
int show_command(const store_command_options& opts);
int events_command(const store_command_options& opts);
int recover_command(const store_command_options& opts);

} // namespace troupe
