// troupe: the command line. Subcommands live in runtime/*_command.cpp; this
// file only parses flags (CLI11) and dispatches.
#include "runtime/cli/gpu_command.hpp"
#include "runtime/cli/gpu_serve.hpp"
#include "runtime/cli/logs_command.hpp"
#include "runtime/cli/source.hpp"
#include "runtime/client_commands.hpp"
#include "runtime/coordinator_command.hpp"
#include "runtime/run_command.hpp"
#include "runtime/store_commands.hpp"
#include "runtime/system.hpp"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <cstring>

namespace {

// Where the reading commands go (runtime/cli/source.hpp), for their --help.
constexpr const char* reading_rule =
  "Reads through a coordinator's API or a local store, whichever comes first of: --server; "
  "-o/--db; $TROUPE_SERVER, server: in ~/.config/troupe/config.yaml or http://127.0.0.1:8420 "
  "when it answers; the local store (troupe status says which).";

// The flags every client of a coordinator's API takes.
void add_server_flags(CLI::App* c, troupe::client_flags& o, const char* server_help) {
  c->add_option("--server", o.server, server_help);
  c->add_option("--token", o.token, "The API's bearer token (else --token-file, $TROUPE_TOKEN, "
                                    "$TROUPE_TOKEN_FILE, token: or token_file: in the config "
                                    "file)");
  c->add_option("--token-file", o.token_file, "A file whose first line is the token");
}

// The choice of a server or the store for `o`, said when it fell back;
// false (said) on a bad config. A server chosen goes into o.server.
bool choose(troupe::store_command_options& o, const CLI::App* sub) {
  o.store_given = sub->count("--db") + sub->count("--output") > 0;
  troupe::source_choice where;
  if (auto err = troupe::choose_source(o, where)) {
    std::fprintf(stderr, "troupe: %s\n", err->c_str());
    return false;
  }
  if (!where.note.empty())
    std::fprintf(stderr, "troupe: %s\n", where.note.c_str());
  o.server = where.use_server ? where.server.server : "";
  o.use_server = where.use_server;
  return true;
}

sigset_t stop_signals() {
  return troupe::stop_signal_set();
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
  cmd->add_option("--node-slots", run.node_slots,
                  "CPU slots of the local node: a stage takes resources.cpus (default 1) and "
                  "waits at the node while they are taken (default 0: no limit)")
    ->check(CLI::NonNegativeNumber);
  cmd->add_option("-p,--param", run.params,
                  "A parameter's value, NAME=VALUE (repeatable; see params: in the pipeline)");

  troupe::run_command_options rerun;
  auto* rerun_cmd = app.add_subcommand(
    "rerun", "Run an ended run's failed stages again (or --from a stage), with everything "
             "that depends on them, in the same run and folder; succeeded stages keep their "
             "results. Exit codes as for run.");
  rerun_cmd->add_option("run_id", rerun.rerun, "Run id, or a unique prefix of one")->required();
  auto* failed_flag = rerun_cmd->add_flag("--failed", "The failed, timed out, cancelled and "
                                                      "skipped stages (the default)");
  rerun_cmd->add_option("--from", rerun.rerun_from,
                        "This stage (or matrix stage) and everything that depends on it")
    ->excludes(failed_flag);
  rerun_cmd->add_flag("--allow-changed", rerun.allow_changed,
                      "Rerun although the pipeline file changed since the run");
  rerun_cmd->add_option("--reason", rerun.reason, "Why, for the run's rerun event");
  rerun_cmd->add_option("-o,--output", rerun.output, "Folder whose troupe.db holds the run")
    ->capture_default_str();
  rerun_cmd->add_option("--db", rerun.db, "The store that holds the run");
  rerun_cmd->add_option("--sample-interval", rerun.sample_interval,
                        "Interval of periodic resource samples; 0 disables them")
    ->capture_default_str();
  rerun_cmd->add_option("--grace", rerun.grace, "Time between SIGTERM and SIGKILL")
    ->capture_default_str();
  troupe::rerun_options rerun_api;
  add_server_flags(rerun_cmd, rerun_api,
                   "Ask this coordinator's API instead of running here (the run goes to the "
                   "server or stays local by the rule of troupe status)");

  troupe::store_command_options q;
  auto add_db = [&](CLI::App* c, bool server = true) {
    c->add_option("--db", q.db, "Store to read (default: <output>/troupe.db)");
    c->add_option("-o,--output", q.output, "Folder whose troupe.db is read")
      ->capture_default_str();
    c->add_flag("--json", q.json, "Print JSON instead of a table");
    if (server)
      add_server_flags(c, q, "Read through this coordinator's API");
  };
  auto* runs_cmd = app.add_subcommand(
    "runs", std::string("List runs, newest first: id (its shortest unique prefix), pipeline, "
                        "status, what launched it (BY).\n") + reading_rule);
  add_db(runs_cmd);
  runs_cmd->add_option("--status", q.status,
                       "Only runs in this status (queued, running, succeeded, failed, "
                       "timed_out, cancelled)");
  runs_cmd->add_option("--pipeline", q.pipeline, "Only runs of this pipeline (its name)");
  runs_cmd->add_option("-n,--limit", q.limit, "At most this many runs")->capture_default_str();
  auto* show_cmd =
    app.add_subcommand("show", std::string("Show one run: its stages and every attempt of each.\n")
                                 + reading_rule);
  add_db(show_cmd);
  show_cmd->add_option("run_id", q.run_id, "Run id, or a unique prefix of one")->required();
  auto* events_cmd = app.add_subcommand(
    "events", std::string("Show a run's events in the order written.\n") + reading_rule);
  add_db(events_cmd);
  events_cmd->add_option("run_id", q.run_id, "Run id, or a unique prefix of one")->required();
  events_cmd->add_option("--level", q.level, "Lowest level shown: info, warn or error")
    ->capture_default_str();
  events_cmd->add_flag("-f,--follow", q.follow,
                       "Keep printing events as they happen until the run ends (from the store, "
                       "or through the coordinator's API when a server is configured)");

  auto* recover_cmd = app.add_subcommand(
    "recover", "Reconcile runs whose owner is lost (its troupe process died, is a zombie, or "
               "sent no heartbeat for 20 s): fail them as interrupted, kill what is left of "
               "their stages, and bring metadata.json in line. `troupe run` does this before "
               "it starts; this does it now.");
  add_db(recover_cmd, false);

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
  coord_cmd->add_option_function<int>(
    "--node-slots", [&co](const int& v) { co.node_slots = v; },
    "CPU slots of the local node over all its runs: a stage takes resources.cpus "
    "(default 1) and waits at the node while they are taken (default 0: no limit)");
  opt("--id", co.id, "Coordinator id (default host:pid)");
  opt("--log-format", co.log_format, "text or json (default text)");
  opt("--log-level", co.log_level, "debug, info, warn or error (default info)");
  opt("--lease", co.lease, "How long a schedule claim holds (default 30s)");
  coord_cmd->add_flag("--drain", co.drain,
                      "On SIGTERM/SIGINT, wait for the runs in flight to end (default: leave "
                      "them to the next start)");

  // The client of a coordinator's API.
  auto add_client = [](CLI::App* c, troupe::client_options& o) {
    add_server_flags(c, o, "Coordinator URL (default: $TROUPE_SERVER, server: in "
                           "~/.config/troupe/config.yaml, else http://127.0.0.1:8420)");
  };
  troupe::launch_options lo;
  auto* launch_cmd = app.add_subcommand(
    "launch", "Launch a run of a registered pipeline on a coordinator; prints its id.\nWith "
              "--follow or --wait, exits like `troupe run` would (0, 1, 3, 4 or 130); Ctrl-C\n"
              "detaches (exit 5: the run goes on) unless --cancel-on-interrupt.");
  add_client(launch_cmd, lo);
  launch_cmd->add_option("pipeline", lo.pipeline, "Pipeline name (see GET /api/pipelines)")
    ->required();
  launch_cmd->add_option("--priority", lo.priority, "Higher starts first when runs queue");
  launch_cmd->add_option("-e,--enable", lo.enable, "Enable an optional stage (repeatable)");
  launch_cmd->add_option("--env", lo.env, "KEY=VALUE for every stage (repeatable)");
  launch_cmd->add_option("-p,--param", lo.params,
                         "A parameter's value, NAME=VALUE (repeatable; see params: in the pipeline)");
  auto* wait_flag = launch_cmd->add_flag("--wait", lo.wait, "Wait for the run to end");
  launch_cmd->add_flag("--cancel-on-interrupt", lo.cancel_on_interrupt,
                       "With --follow or --wait: Ctrl-C cancels the run (exit 130) instead of "
                       "detaching from it (exit 5, the run goes on)");
  launch_cmd->add_flag("--follow", lo.follow, "Show progress lines until the run ends")
    ->excludes(wait_flag);
  launch_cmd->add_flag("--json", lo.json, "Print the API's answer");
  troupe::store_command_options cancel_o;
  troupe::store_command_options status_o;
  auto* status_cmd = app.add_subcommand(
    "status", "Say where runs/show/events/logs read (a server, or the local store) and where "
              "launch, cancel and schedule go, and whether a coordinator answers there (exit 0 "
              "when one does, 4 when none).");
  add_server_flags(status_cmd, status_o,
                   "Coordinator URL (else $TROUPE_SERVER, the config file, the default)");
  status_cmd->add_option("--db", status_o.db, "Local store (default: <output>/troupe.db)");
  status_cmd->add_option("-o,--output", status_o.output, "Folder whose troupe.db is the local store")
    ->capture_default_str();
  troupe::client_options pipes_o;
  auto* pipes_cmd = app.add_subcommand(
    "pipelines", "List the pipelines a coordinator can launch: stages ([optional]), params "
                 "(required, default, description), api_env and schedules.");
  add_client(pipes_cmd, pipes_o);
  pipes_cmd->add_flag("--json", pipes_o.json, "Print the API's answer");
  auto* cancel_cmd = app.add_subcommand(
    "cancel", "Cancel a queued or running run: through a coordinator's API, or in a local store "
              "(a `troupe run` on this host is sent SIGTERM, as Ctrl-C would; another owner "
              "gets a cancel request through the store). The server or store is chosen as for "
              "troupe runs (troupe status says which).");
  add_server_flags(cancel_cmd, cancel_o, "Cancel through this coordinator's API");
  cancel_cmd->add_option("run_id", cancel_o.run_id, "Run id, a unique prefix of one, or the "
                                                    "run's folder")->required();
  cancel_cmd->add_option("--db", cancel_o.db, "The store that holds the run");
  cancel_cmd->add_option("-o,--output", cancel_o.output, "Folder whose troupe.db holds the run")
    ->capture_default_str();
  troupe::store_command_options logs_o;
  auto* logs_cmd = app.add_subcommand(
    "logs", std::string("Print a stage's log, or every stage's in order under a header each, "
                        "from the local store's run folder or a coordinator.\n")
              + reading_rule);
  logs_cmd->add_option("run_id", logs_o.run_id,
                       "Run id, a unique prefix of one, or the run's folder")->required();
  logs_cmd->add_option("stage", logs_o.stage, "Stage name (default: every stage that ran)");
  logs_cmd->add_option("--stream", logs_o.stream, "stdout or stderr")->capture_default_str();
  logs_cmd->add_flag_callback("--stderr", [&logs_o] { logs_o.stream = "stderr"; },
                              "Same as --stream stderr");
  logs_cmd->add_option("--attempt", logs_o.attempt, "Attempt number (default: the latest)");
  logs_cmd->add_option("--tail", logs_o.tail, "Only the last N lines (of each stage)");
  logs_cmd->add_flag("-f,--follow", logs_o.follow,
                     "Keep printing while the stage runs (each stage in turn, without STAGE)");
  logs_cmd->add_option("--db", logs_o.db, "Store to read (default: <output>/troupe.db)");
  logs_cmd->add_option("-o,--output", logs_o.output, "Folder whose troupe.db is read")
    ->capture_default_str();
  add_server_flags(logs_cmd, logs_o, "Read through this coordinator's API");
  troupe::schedule_options so;
  auto* sched_cmd = app.add_subcommand("schedule", "Schedules on a coordinator: add, list, show, "
                                                   "edit, pause, resume, trigger, delete.");
  sched_cmd->require_subcommand(1);
  auto* sadd = sched_cmd->add_subcommand("add", "Add a schedule; prints its id.");
  add_client(sadd, so);
  sadd->add_option("pipeline", so.pipeline, "Pipeline name")->required();
  sadd->add_option("--every", so.every, "Interval (e.g. 30s, 5m, 1h), from now");
  sadd->add_option("--cron", so.cron, "Cron line, UTC (5 fields, or @hourly/@daily/...)");
  sadd->add_option("--at", so.at, "Once, at this RFC 3339 time (e.g. 2026-11-24T09:30:00Z)");
  sadd->add_option("--overlap", so.overlap, "allow (default), forbid or replace");
  sadd->add_option("--catch-up", so.catch_up, "none, one (default) or all: missed ticks");
  sadd->add_flag("--disabled", so.disabled, "Create it disabled");
  sadd->add_option("--priority", so.priority, "Its runs' priority");
  sadd->add_option("-e,--enable", so.enable, "Enable an optional stage in its runs");
  sadd->add_option("--env", so.env, "KEY=VALUE for its runs' stages");
  sadd->add_option("-p,--param", so.params, "A parameter's value for its runs, NAME=VALUE");
  sadd->add_flag("--json", so.json, "Print the API's answer");
  auto* slist = sched_cmd->add_subcommand("list", "List the schedules.");
  add_client(slist, so);
  slist->add_flag("--json", so.json, "Print the API's answer");
  const std::pair<const char*, const char*> actions[] = {
    {"show", "Show a schedule and its last events (--last N, --json for all)."},
    {"edit", "Change a schedule's timing (--every, --cron, --at), overlap, catch-up, priority "
             "or its runs' --enable/--env/--param."},
    {"pause", "Pause a schedule: no run is launched until it is resumed."},
    {"resume", "Resume a paused schedule from now (missed ticks are not caught up)."},
    {"trigger", "Launch a run of the schedule now, with its options and overlap policy (forbid: "
                "refused while one of its runs has not ended); its next tick stays. Prints the "
                "run's id."},
    {"enable", "Same as resume."},
    {"disable", "Same as pause."},
    {"delete", "Delete a schedule (its runs stay)."}};
  for (auto [action, help] : actions) {
    auto* sub = sched_cmd->add_subcommand(action, help);
    add_client(sub, so);
    sub->add_option("id", so.id, "Schedule id (see troupe schedule list)")->required();
    if (std::string(action) == "trigger")
      sub->add_flag("--json", so.json, "Print the API's answer");
    if (std::string(action) == "show") {
      sub->add_option("--last", so.last, "The last N events")->capture_default_str();
      sub->add_flag("--json", so.json, "Print the API's answer (the first 1000 events)");
    }
    if (std::string(action) == "edit") {
      sub->add_option("--every", so.every, "Interval (e.g. 30s, 5m, 1h), from now");
      sub->add_option("--cron", so.cron, "Cron line, UTC (5 fields, or @hourly/@daily/...)");
      sub->add_option("--at", so.at, "Once, at this RFC 3339 time (e.g. 2026-11-24T09:30:00Z)");
      sub->add_option("--overlap", so.overlap, "allow, forbid or replace");
      sub->add_option("--catch-up", so.catch_up, "none, one or all: missed ticks");
      sub->add_option("--priority", so.priority, "Its runs' priority");
      sub->add_option("-e,--enable", so.enable, "Enable an optional stage in its runs");
      sub->add_option("--env", so.env, "KEY=VALUE for its runs' stages (the pipeline's api_env)");
      sub->add_option("-p,--param", so.params, "A parameter's value for its runs, NAME=VALUE");
      sub->add_flag("--json", so.json, "Print the API's answer");
    }
  }

  troupe::gpu_options go;
  auto* gpu_cmd = app.add_subcommand(
    "gpu", "The node's GPU broker on a coordinator (docs/gpu.md): info, leases, lease, release, "
           "policy, events.");
  gpu_cmd->require_subcommand(1);
  auto* ginfo = gpu_cmd->add_subcommand("info", "The GPUs NVML reports, or why there are none.");
  auto* gleases = gpu_cmd->add_subcommand("leases", "Every lease not yet freed.");
  auto* glease = gpu_cmd->add_subcommand(
    "lease", "Lease GPUs for a holder outside troupe's stages; prints the lease's id.");
  glease->add_option("--holder", go.holder, "Who holds it (a service's name)")->required();
  glease->add_option("--gpus", go.gpus, "Whole GPUs")->check(CLI::Range(1, 64));
  glease->add_option("--memory", go.memory, "A share of one GPU (e.g. 8Gi)");
  glease->add_option("--ttl", go.ttl, "How long unrenewed (e.g. 10m; 0: no expiry; default the "
                                      "policy's)");
  glease->add_option("--priority", go.priority, "Higher first when requests queue");
  glease->add_flag("--wait", go.wait, "Queue when nothing fits now (else refused)");
  auto* grelease = gpu_cmd->add_subcommand("release", "Release a lease.");
  grelease->add_option("id", go.id, "Lease id (see troupe gpu leases)")->required();
  auto* gpolicy = gpu_cmd->add_subcommand(
    "policy", "Show the broker's policy, or change it (safe mode on: only --safe-mode off).");
  gpolicy->add_option("--safe-mode", go.safe_mode, "on (every lease denied) or off");
  gpolicy->add_option("--default-ttl", go.default_ttl, "A lease's TTL unless asked (0: none)");
  gpolicy->add_option("--reserve", go.reserve, "Memory per GPU never leased as shares (e.g. 2Gi)");
  gpolicy->add_option("--max-leases-per-holder", go.max_leases_per_holder, "0: no limit");
  gpolicy->add_option("--release-grace", go.release_grace,
                      "How long a released lease stays booked at most while NVML still shows "
                      "its processes");
  auto* gevents = gpu_cmd->add_subcommand(
    "events", "What the broker did: policy changes (and who made them), over-use, expiries, "
              "bookings freed by the grace, GPUs another broker on the host owns.");
  gevents->add_option("--after", go.after, "Only events after this id");
  troupe::gpu_serve_options gs;
  auto* gserve = gpu_cmd->add_subcommand(
    "serve", "Serve this host's GPU broker without a coordinator: /health, /ready, /metrics "
             "and /gpu/* (the same endpoints as the coordinator's). Policy from TROUPE_GPU_*.");
  gserve->add_option("--listen", gs.listen, "HOST:PORT (port 0: a free one)")->capture_default_str();
  gserve->add_option("--token", gs.token, "Bearer token every /gpu/ request must carry");
  gserve->add_option("--token-file", gs.token_file, "File holding the token");
  gserve->add_option("--db", gs.db, "Keep the leases in this store (SQLite file or "
                                    "postgresql://...; default: in memory)");
  for (auto* sub : {ginfo, gleases, glease, grelease, gpolicy, gevents}) {
    add_server_flags(sub, go, "Coordinator URL (default: $TROUPE_SERVER, server: in "
                              "~/.config/troupe/config.yaml, else http://127.0.0.1:8420)");
    sub->add_flag("--json", go.json, "Print the API's answer");
  }

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
  if (*rerun_cmd) {
    troupe::store_command_options where;
    static_cast<troupe::client_flags&>(where) = rerun_api;
    where.output = rerun.output;
    where.db = rerun.db;
    if (!choose(where, rerun_cmd))
      return 2;
    if (!where.use_server)
      return troupe::run_command(rerun);
    rerun_api.server = where.server;
    rerun_api.run_id = rerun.rerun;
    rerun_api.from = rerun.rerun_from;
    rerun_api.reason = rerun.reason;
    rerun_api.allow_changed = rerun.allow_changed;
    return troupe::api_rerun_command(rerun_api);
  }
  if (*coord_cmd)
    return troupe::coordinator_command(co);
  if (*launch_cmd)
    return troupe::launch_command(lo);  // (a follow takes the stop signals itself)
  if (*gserve)
    return troupe::gpu_serve_command(gs);  // (takes the stop signals itself)
  pthread_sigmask(SIG_UNBLOCK, &handled, nullptr);
  if (*pipes_cmd)
    return troupe::pipelines_command(pipes_o);
  if (*status_cmd) {
    status_o.store_given = status_cmd->count("--db") + status_cmd->count("--output") > 0;
    return troupe::status_command(status_o);
  }
  if (*cancel_cmd) {
    if (!choose(cancel_o, cancel_cmd))
      return 2;
    if (!cancel_o.use_server)
      return troupe::cancel_local_command(cancel_o);
    troupe::client_options api;
    static_cast<troupe::client_flags&>(api) = cancel_o;
    return troupe::cancel_command(api, cancel_o.run_id);
  }
  if (*logs_cmd)
    return choose(logs_o, logs_cmd) ? troupe::logs_command(logs_o, logs_o.use_server) : 2;
  if (*gpu_cmd) {
    for (auto* sub : gpu_cmd->get_subcommands())
      go.action = sub->get_name();
    return troupe::gpu_command(go);
  }
  if (*sched_cmd) {
    for (auto* sub : sched_cmd->get_subcommands())
      so.action = sub->get_name();
    return troupe::schedule_command(so);
  }
  // runs, show and events read the store or a coordinator's API, by the
  // rule of runtime/cli/source.hpp; recover is the store's alone.
  for (auto* sub : {runs_cmd, show_cmd, events_cmd})
    if (*sub && !choose(q, sub))
      return 2;
  bool api = q.use_server;
  if (*runs_cmd)
    return api ? troupe::api_runs_command(q) : troupe::runs_command(q);
  if (*show_cmd)
    return api ? troupe::api_show_command(q) : troupe::show_command(q);
  if (*events_cmd)
    return api ? troupe::api_events_command(q) : troupe::events_command(q);
  if (*recover_cmd)
    return troupe::recover_command(q);
  return 2;
}
