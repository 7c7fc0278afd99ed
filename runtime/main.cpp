// troupe: the command line. Subcommands live in runtime/*_command.cpp; this
// file only parses flags (CLI11) and dispatches.
#include "runtime/coordinator_command.hpp"
#include "runtime/run_command.hpp"
#include "runtime/store_commands.hpp"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <cstring>

namespace {

sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

// Before anything else of troupe runs, even the shared libraries' static
// initializers (CAF's take milliseconds): SIGINT/SIGTERM/SIGHUP stay
// pending until `troupe run`'s signal thread takes them, so a SIGTERM in
// the first milliseconds becomes a cancel and exit 130, not death by the
// signal. Only the dynamic loader's own work comes earlier.
void block_stop_signals(int, char**, char**) {
  auto set = stop_signals();
  sigprocmask(SIG_BLOCK, &set, nullptr);
}

__attribute__((section(".preinit_array"), used)) void (*const block_early)(int, char**, char**) =
  block_stop_signals;

} // namespace

int main(int argc, char** argv) {
  // Other commands than `run` take the default actions again (below).
  auto handled = stop_signals();
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);

  CLI::App app{"troupe: runs pipelines of stages as auditable runs"};
  app.set_version_flag("--version", "troupe 0.1.0");
  app.require_subcommand(1);

  troupe::run_command_options run;
  auto* cmd = app.add_subcommand(
    "run", "Run a pipeline's stages in order, leaving logs, metadata.json and "
           "resource_trace.jsonl in a new run folder.\nExit codes: 0 all stages "
           "succeeded, 1 a stage failed, 2 usage or pipeline error, 3 a stage timed "
           "out, 4 the run could not be recorded (full disk, store) or an internal error, 130 cancelled.");
  cmd->add_option("pipeline", run.pipeline, "Pipeline file (YAML)")->required();
  cmd->add_option("-o,--output", run.output, "Folder for run folders")
    ->capture_default_str();
  cmd->add_option("-e,--enable", run.enable, "Enable an optional stage (repeatable)");
  cmd->add_flag("-n,--dry-run", run.dry_run,
                "Print the plan and run nothing (also: DRY_RUN=1 in the environment)");
  cmd->add_option("--sample-interval", run.sample_interval,
                  "Interval of periodic resource samples; 0 disables them")
    ->capture_default_str();
  cmd->add_option("--grace", run.grace, "Time between SIGTERM and SIGKILL when a stage is stopped")
    ->capture_default_str();
  cmd->add_option("--db", run.db,
                  "Store for runs, attempts and events: a SQLite file (default: "
                  "<output>/troupe.db) or postgresql://user@host/db");
  cmd->add_flag("--no-db", run.no_db, "Keep no store (metadata.json and logs only)");

  troupe::store_command_options q;
  auto add_db = [&](CLI::App* c) {
    c->add_option("--db", q.db, "Store to read (default: <output>/troupe.db)");
    c->add_option("-o,--output", q.output, "Folder whose troupe.db is read")
      ->capture_default_str();
    c->add_flag("--json", q.json, "Print JSON instead of a table");
  };
  auto* runs_cmd = app.add_subcommand("runs", "List runs from the store, newest first.");
  add_db(runs_cmd);
  runs_cmd->add_option("--status", q.status,
                       "Only runs in this status (queued, running, succeeded, failed, "
                       "timed_out, cancelled)");
  runs_cmd->add_option("--pipeline", q.pipeline, "Only runs of this pipeline (its name)");
  runs_cmd->add_option("-n,--limit", q.limit, "At most this many runs")->capture_default_str();
  auto* show_cmd =
    app.add_subcommand("show", "Show one run: its stages and every attempt of each.");
  add_db(show_cmd);
  show_cmd->add_option("run_id", q.run_id, "Run id, or a unique prefix of one")->required();
  auto* events_cmd = app.add_subcommand("events", "Show a run's events in the order written.");
  add_db(events_cmd);
  events_cmd->add_option("run_id", q.run_id, "Run id, or a unique prefix of one")->required();
  events_cmd->add_option("--level", q.level, "Lowest level shown: info, warn or error")
    ->capture_default_str();

  auto* recover_cmd = app.add_subcommand(
    "recover", "Reconcile runs whose owner is lost (its troupe process died, is a zombie, or "
               "sent no heartbeat for 20 s): fail them as interrupted, kill what is left of "
               "their stages, and bring metadata.json in line. `troupe run` does this before "
               "it starts; this does it now.");
  add_db(recover_cmd);

  troupe::coordinator_command_options co;
  auto* coord_cmd = app.add_subcommand(
    "coordinator",
    "Run the coordinator: one long-lived process that launches runs of the registered "
    "pipelines through its HTTP API and its schedules, many at once (docs/coordinator.md, "
    "docs/api.md). Settings: defaults < --config < flags < TROUPE_* variables.");
  auto opt = [&](const char* name, std::optional<std::string>& into, const char* help) {
    coord_cmd->add_option_function<std::string>(
      name, [&into](const std::string& v) { into = v; }, help);
  };
  coord_cmd->add_option("-c,--config", co.config, "Settings file (YAML; configs/coordinator.yaml)");
  opt("--listen", co.listen, "HOST:PORT to serve the API on (default 127.0.0.1:8420; port 0: a free one)");
  opt("--db", co.db, "Store: a SQLite file or postgresql://... (default: <output>/troupe.db)");
  opt("-o,--output", co.output, "Folder for run folders (default output/running_order)");
  opt("--pipelines", co.pipelines, "Folder of the pipelines it may launch, by name (required)");
  opt("--token", co.token, "Bearer token every /api request must carry (default: none)");
  opt("--token-file", co.token_file, "File holding the token");
  coord_cmd->add_option_function<int>(
    "--max-running", [&co](const int& v) { co.max_running = v; },
    "Runs at once, over all pipelines (default 0: no limit)");
  opt("--id", co.id, "Coordinator id (default host:pid)");
  opt("--log-format", co.log_format, "text or json (default text)");
  opt("--log-level", co.log_level, "debug, info, warn or error (default info)");
  opt("--lease", co.lease, "How long a schedule claim holds (default 30s)");
  coord_cmd->add_flag("--drain", co.drain,
                      "On SIGTERM/SIGINT, wait for the runs in flight to end (default: leave "
                      "them to the next start)");

  // A first word that is not a command: say so (CLI11 would only say that a
  // subcommand is required).
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known = known || sub->check_name(argv[1]);
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "troupe: '%s' is not a troupe command (commands: %s; see troupe --help)\n",
                   argv[1], names.c_str());
      return 2;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (*cmd)
    return troupe::run_command(run);
  if (*coord_cmd)
    return troupe::coordinator_command(co);
  pthread_sigmask(SIG_UNBLOCK, &handled, nullptr);
  if (*runs_cmd)
    return troupe::runs_command(q);
  if (*show_cmd)
    return troupe::show_command(q);
  if (*events_cmd)
    return troupe::events_command(q);
  if (*recover_cmd)
    return troupe::recover_command(q);
  return 2;
}
