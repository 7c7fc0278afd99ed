// `troupe runs`, `troupe show RUN_ID`, `troupe events RUN_ID`: read the
// store; tables for people by default, `--json` for machines.
// `troupe recover`: reconciles the unfinished runs whose owner is lost.
#pragma once

#include "adapters/store/store.hpp"
#include "runtime/api_client.hpp"
#include "messages/store.hpp"

#include <memory>

#include <string>
#include <vector>

namespace troupe {

/// The options of the reading commands; the server fields (client_flags)
/// are for runtime/cli/source.hpp's choice between a server and the store.
struct store_command_options : client_flags {
  std::string db;          // store URL; empty: <output>/troupe.db
  std::string output = "output/running_order";
  bool store_given = false;  // -o or --db was on the command line
  bool use_server = false;   // the choice made (runtime/cli/source.hpp): server or store
  std::string status;      // runs: only this status
  std::string pipeline;    // runs: only this pipeline
  int limit = 20;          // runs
  std::string run_id;      // show, events: an id or a unique prefix
  std::string level = "info";  // events: the lowest level shown
  bool json = false;
  bool follow = false; // events, logs: keep printing until the run (logs: the stage) ends
  // logs
  std::string stage;           // "": every stage that ran, in order, each under a header
  std::string stream = "stdout";
  int attempt = 0;             // 0: the latest
  int tail = -1;               // the last N lines only (-1: all)
};

/// The store `o` names (-o, --db), opened to read, and the run `o.run_id`
/// names in it (an id, a unique prefix, a run folder).
caf::expected<std::pair<std::unique_ptr<store>, run_row>>
open_run(const store_command_options& o);

int runs_command(const store_command_options& opts);
int show_command(const store_command_options& opts);
int events_command(const store_command_options& opts);
int recover_command(const store_command_options& opts);
/// troupe cancel against a local store: a `troupe run` on this host gets
/// SIGTERM (queued with local_cancel_cookie, so its reason names troupe
/// cancel); a run of a coordinator or another host, a cancel request in
/// the store, which its owner takes up.
int cancel_local_command(const store_command_options& opts);

/// The tables (or --json documents) of runs, show and events, whatever the
/// rows came from (the store, or a coordinator's API).
/// The runs as a table (RUN: `shown[i]`, the shortest unique form of each
/// id, when given; else the ids) or as JSON.
void print_runs(const std::vector<run_row>& runs, bool json, const std::string& where,
                const std::vector<std::string>& shown = {});
void print_show(const run_row& run, const std::vector<job_row>& jobs,
                const std::vector<attempt_row>& attempts, bool json);
void print_events(const std::vector<event_row>& events, bool json);

} // namespace troupe
