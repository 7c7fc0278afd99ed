#include "runtime/run_command.hpp"

#include "actors/artifact_writer.hpp"
#include "actors/node.hpp"
#include "actors/resource_sampler.hpp"
#include "runtime/gpu_settings.hpp"
#include "runtime/node_assembly.hpp"
#include "actors/run_supervisor.hpp"
#include "actors/store_writer.hpp"
#include "adapters/http_client/http_client.hpp"
#include "adapters/store/store.hpp"
#include "runtime/recovery.hpp"
#include "runtime/run_watch.hpp"
#include "actors/running_order.hpp"
#include "adapters/artifacts/io_pool.hpp"
#include "adapters/artifacts/run_folder.hpp"
#include "adapters/process/process_runner.hpp"
#include "adapters/sampling/gpu_source.hpp"
#include "adapters/sampling/topology.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"
#include "runtime/duration.hpp"
#include "runtime/host_env.hpp"
#include "runtime/run_ref.hpp"
#include "runtime/ids.hpp"
#include "runtime/liveness.hpp"
#include "runtime/pipeline.hpp"
#include "runtime/progress.hpp"
#include "runtime/rerun.hpp"
#include "runtime/run_plan.hpp"
#include "runtime/system.hpp"

#include <caf/all.hpp>

#include <poll.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <set>
#include <thread>

extern char** environ;

namespace troupe {

namespace {

// A SIGINT/SIGTERM/SIGHUP that arrived while blocked and nobody took yet;
// taken here. 0 when none.
int pending_stop_signal() {
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    if (sigismember(&pending, sig)) {
      sigset_t one;
      sigemptyset(&one);
      sigaddset(&one, sig);
      timespec zero{0, 0};
      ::sigtimedwait(&one, nullptr, &zero);
      return sig;
    }
  }
  return 0;
}

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr)
    return false;
  std::string s = v;
  return s == "1" || s == "true" || s == "yes";
}

// Why a stage could not start as things stand, or empty. The dry run's
// check: a working directory or program an earlier stage creates shows up
// here too, and says so.
std::string start_problem(const stage_def& s, const pipeline_def& p) {
  struct stat st{};
  // (A field with a template is checked when the run fills it in.)
  if (!s.is_http && s.cwd.find("${") == std::string::npos
      && (::stat(s.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)))
    return "working directory " + s.cwd + " does not exist (now)";
  if (!s.run.empty()) {
    auto prog = s.argv(p.dir).at(0);
    if (prog.find('/') != std::string::npos && prog.find("${") == std::string::npos
        && ::access(prog.c_str(), X_OK) != 0)
      return "program " + prog + " is not an executable file (now)";
  }
  return {};
}

// A job's command as the run would start it, templates filled in.
std::string command_of(const job_spec& j) {
  if (j.strategy != "exec")
    return j.strategy + " " + j.http.method + " " + j.http.url;
  std::string argv;
  for (auto& a : j.argv) {
    bool plain = !a.empty() && a.find_first_of(" \t\"'$") == std::string::npos;
    argv += (argv.empty() ? "" : " ") + (plain ? a : "'" + a + "'");
  }
  return argv;
}

// The plan as the run would have it (templates substituted with the given
// params, matrix instances expanded, probes in their order); false when a
// stage that would run could not start now.
bool print_plan(const pipeline_def& p, const run_plan& plan, const std::set<std::string>& enabled) {
  auto waves = stage_waves(p);
  auto parallel = p.max_parallel > 0
                    ? std::to_string(p.max_parallel)
                    : std::to_string(std::max(1u, std::thread::hardware_concurrency()))
                        + " (the cores)";
  std::printf("dry run of '%s' (%s): %zu stage(s) in %zu wave(s), at most %s at once, "
              "on_failure %s; nothing is executed\n",
              p.name.c_str(), p.file.c_str(), p.stages.size(), waves.size(), parallel.c_str(),
              p.continue_on_failure ? "continue" : "stop");
  // A wave's stages wait only for earlier waves' (each starts as soon as its
  // own have succeeded).
  for (size_t w = 0; w < waves.size(); ++w) {
    std::string names;
    for (auto i : waves[w])
      names += (names.empty() ? "" : ", ") + p.stages[i].name;
    std::printf("  wave %zu: %s\n", w + 1, names.c_str());
  }
  if (!plan.probes.empty()) {
    std::printf("  probes, in this order, before the first stage and after the last:\n");
    for (size_t k = 0; k < plan.probes.size(); ++k)
      std::printf("    %zu. %-16s %s\n", k + 1, plan.probes[k].name.c_str(),
                  command_of(plan.probes[k]).c_str());
  }
  bool ok = true;
  for (size_t i = 0; i < p.stages.size(); ++i) {
    const auto& s = p.stages[i];
    bool runs = !s.optional || enabled.count(s.name) > 0;
    auto problem = runs ? start_problem(s, p) : std::string{};
    ok = ok && problem.empty();
    std::printf("  %2zu. %-18s %s\n", i + 1, s.name.c_str(),
                !runs              ? "skipped (optional, not enabled)"
                : problem.empty() ? "would run"
                                  : ("cannot start: " + problem).c_str());
    if (!runs)
      continue;
    const auto& job = plan.jobs.at(i);
    std::string deps;
    for (auto& d : s.depends_on)
      deps += (deps.empty() ? "" : ", ") + d;
    std::printf("      %s\n      cwd %s, timeout %s, after %s\n", command_of(job).c_str(),
                job.cwd.c_str(), format_duration(s.timeout).c_str(),
                deps.empty() ? "nothing" : deps.c_str());
  }
  return ok;
}

// Who sent a stop signal, for the run's reason: "SIGINT (Ctrl-C)",
// "SIGTERM from process 123 (kill)", or `troupe cancel`'s own words (it
// queues the signal with local_cancel_cookie, runtime/run_command.hpp).
std::string stop_reason(const signalfd_siginfo& info) {
  int sig = static_cast<int>(info.ssi_signo);
  std::string name = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
  auto pid = static_cast<pid_t>(info.ssi_pid);
  if (info.ssi_code == SI_QUEUE && info.ssi_int == local_cancel_cookie)
    return "troupe cancel (process " + std::to_string(pid) + ")";
  if (info.ssi_code == SI_KERNEL || pid == 0)
    return name + (sig == SIGINT ? " (Ctrl-C)" : sig == SIGHUP ? " (the terminal closed)" : "");
  std::string comm;
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::getline(in, comm);
  return name + " from process " + std::to_string(pid) + (comm.empty() ? "" : " (" + comm + ")");
}

// SIGINT/SIGTERM/SIGHUP arrive here (blocked everywhere else) and become a cancel.
class signal_forwarder {
public:
  // A signalfd for the blocked stop signals and an eventfd to be told to
  // stop: the thread sleeps in poll until one of them fires (it used to wake
  // every 100 ms to look at a flag, and troupe waited up to that long at exit).
  explicit signal_forwarder(run_supervisor_actor target) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    signals_ = ::signalfd(-1, &set, SFD_CLOEXEC);
    wake_ = ::eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this, target] {
      int seen = 0;
      for (;;) {
        pollfd fds[2] = {{signals_, POLLIN, 0}, {wake_, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
          if (errno == EINTR)
            continue;
          return;
        }
        if (fds[1].revents != 0)
          return;
        signalfd_siginfo info{};
        if (::read(signals_, &info, sizeof info) != static_cast<ssize_t>(sizeof info))
          continue;
        auto why = stop_reason(info);
        if (seen++ == 0)
          std::fprintf(stderr, "\ntroupe: %s: stopping the running stage\n", why.c_str());
        else
          std::fprintf(stderr, "\ntroupe: already stopping (SIGKILL follows the grace period)\n");
        caf::anon_send(target, cancel_atom_v, "cancelled by " + why);
      }
    });
  }
  ~signal_forwarder() {
    uint64_t one = 1;
    (void) !::write(wake_, &one, sizeof one);
    thread_.join();
    ::close(signals_);
    ::close(wake_);
  }

private:
  int signals_ = -1;
  int wake_ = -1;
  std::thread thread_;
};

} // namespace

caf::expected<std::map<std::string, std::string>>
parse_param_args(const std::vector<std::string>& items) {
  std::map<std::string, std::string> out;
  for (auto& item : items) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      return caf::make_error(errc::bad_input,
                             "--param '" + item + "': give NAME=VALUE (e.g. --param limit=10)");
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return out;
}

// Who asks for a rerun: user@host.
std::string asker() {
  const char* user = std::getenv("USER");
  if (user == nullptr || *user == '\0')
    if (auto* pw = ::getpwuid(::getuid()))
      user = pw->pw_name;
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  return std::string(user != nullptr ? user : "?") + "@" + host;
}

int run_command(const run_command_options& given_opts) {
  auto opts = given_opts;
  // troupe rerun: the run, from the store, names its pipeline file.
  std::unique_ptr<store> rerun_db;
  std::optional<run_row> rerun_row;
  if (!opts.rerun.empty()) {
    auto url = opts.db.empty() ? opts.output + "/troupe.db" : opts.db;
    if (opts.db.empty() && ::access(url.c_str(), F_OK) != 0) {
      std::fprintf(stderr, "troupe: rerun: no store at %s (give -o OUTPUT or --db URL)\n",
                   url.c_str());
      return exit_code::usage;
    }
    auto opened = open_store(url);
    if (!opened) {
      std::fprintf(stderr, "troupe: %s\n", describe(opened.error()).c_str());
      return exit_code::usage;
    }
    auto found = resolve_run(**opened, opts.rerun);
    if (found.result != run_lookup::outcome::found) {
      auto why = found.result == run_lookup::outcome::error ? found.error
                 : found.result == run_lookup::outcome::ambiguous
                   ? ambiguity_text(opts.rerun, found)
                   : "no run " + opts.rerun + " in " + url + " (give a run id, a unique prefix "
                                                             "of one, or a run folder)";
      std::fprintf(stderr, "troupe: rerun: %s\n", why.c_str());
      return exit_code::usage;
    }
    rerun_row = found.run;
    rerun_db = std::move(*opened);
    opts.pipeline = rerun_row->pipeline_file;
    // It runs with the values it started with.
    opts.params.clear();
    for (auto& [k, v] : params_of(*rerun_row))
      opts.params.push_back(k + "=" + v);
    // Optional stages that ran before run again when chosen.
    if (auto jobs = rerun_db->jobs(rerun_row->run_id))
      for (auto& j : *jobs)
        if (j.attempts > 0)
          opts.enable.push_back(j.job);
  }
  auto loaded = load_pipeline(opts.pipeline);
  if (!loaded) {
    std::fprintf(stderr, "troupe: invalid pipeline\n%s\n", describe(loaded.error()).c_str());
    return exit_code::usage;
  }
  auto& p = *loaded;
  auto given = parse_param_args(opts.params);
  if (!given) {
    std::fprintf(stderr, "troupe: %s\n", describe(given.error()).c_str());
    return exit_code::usage;
  }
  // The stages' environment: troupe's, less its secrets (TROUPE_*, the store's password).
  auto inherited = stage_inheritance(store_url_secrets(opts.db));
  auto params = resolve_params(p, *given, inherited);
  if (!params) {
    std::fprintf(stderr, "troupe: invalid parameters\n%s\n", describe(params.error()).c_str());
    return exit_code::usage;
  }
  std::set<std::string> enabled;
  std::string optional_names;
  for (auto& s : p.stages)
    if (s.optional)
      optional_names += (optional_names.empty() ? "" : ", ") + s.name;
  if (optional_names.empty())
    optional_names = "none";
  for (auto& name : opts.enable) {
    const stage_def* found = nullptr;
    for (auto& s : p.stages)
      if (s.name == name)
        found = &s;
    if (rerun_row && (found == nullptr || !found->optional))
      continue;  // (a stage that ran before: not necessarily optional)
    if (found == nullptr || !found->optional) {
      std::fprintf(stderr, "troupe: --enable %s: %s in %s (optional stages: %s)\n", name.c_str(),
                   found == nullptr ? "no stage of that name"
                                    : "that stage is not optional; it runs anyway",
                   opts.pipeline.c_str(), optional_names.c_str());
      return exit_code::usage;
    }
    enabled.insert(name);
  }
  auto interval = parse_duration(opts.sample_interval);
  if (!interval) {
    std::fprintf(stderr, "troupe: --sample-interval '%s' is not a duration (e.g. 500ms, 1s)\n",
                 opts.sample_interval.c_str());
    return exit_code::usage;
  }
  auto grace = parse_duration(opts.grace);
  if (!grace) {
    std::fprintf(stderr, "troupe: --grace '%s' is not a duration (e.g. 5s)\n",
                 opts.grace.c_str());
    return exit_code::usage;
  }
  // What asks more GPUs than the host has is a pipeline error here, before
  // anything is written (a host without GPUs leaves it to gpu_fallback).
  auto gpus = open_nvml();
  if (auto too_much = gpu_fit_problem(p, gpus->read()); !too_much.empty()) {
    std::fprintf(stderr, "troupe: invalid pipeline for this host's GPUs\n%s", too_much.c_str());
    return exit_code::usage;
  }
  if (opts.dry_run || env_flag("DRY_RUN")) {
    for (auto& [k, v] : *params)
      std::printf("param %s = %s\n", k.c_str(), v.c_str());
    // The plan a run would get; its folder is not made (${run.dir} shows where).
    run_start start;
    start.run_id = "(dry-run)";
    start.run_dir = opts.output + "/<run folder>";
    start.started_at = caf::make_timestamp();
    start.enabled = enabled;
    start.environment = inherited;
    start.params = *params;
    if (print_plan(p, make_run_plan(p, start), enabled))
      return exit_code::ok;
    std::fprintf(stderr, "troupe: dry run: a stage that would run cannot start as things "
                         "stand (see above)\n");
    return exit_code::usage;
  }
  if (auto sig = pending_stop_signal()) {
    std::fprintf(stderr, "troupe: %s received before the run started; nothing was run\n",
                 ::strsignal(sig));
    return exit_code::cancelled;
  }

  // The store: opened, migrated and reconciled before anything runs.
  std::unique_ptr<store> db;
  std::optional<resumable_run> resumed;
  const auto host = read_host_info();
  std::string url;
  // --output is the user's: a path that cannot hold run folders is a usage
  // error, said before anything is written.
  if (auto err = make_directories(opts.output)) {
    std::fprintf(stderr, "troupe: --output %s: %s\n", opts.output.c_str(),
                 describe(err).c_str());
    return exit_code::usage;
  }
  if (rerun_row && opts.no_db) {
    std::fprintf(stderr, "troupe: rerun needs the store (--no-db was given)\n");
    return exit_code::usage;
  }
  if (!opts.no_db) {
    url = opts.db.empty() ? opts.output + "/troupe.db" : opts.db;
    auto opened = rerun_db ? caf::expected<std::unique_ptr<store>>{std::move(rerun_db)}
                           : open_store(url);
    if (!opened) {
      std::fprintf(stderr, "troupe: %s\n", describe(opened.error()).c_str());
      return opened.error().category() == caf::atom("troupe")
                 && opened.error().code() == static_cast<uint8_t>(errc::bad_input)
               ? exit_code::usage
               : exit_code::internal;
    }
    db = std::move(*opened);
    auto report = reconcile(*db, host.hostname, static_cast<int32_t>(::getpid()),
                            p.resume ? p.file : std::string{});
    if (!report) {
      std::fprintf(stderr, "troupe: recovery: %s\n", describe(report.error()).c_str());
      return exit_code::internal;
    }
    for (auto& line : report->messages)
      std::fprintf(stderr, "troupe: recovery: %s\n", line.c_str());
    for (auto& run : report->settled)
      if (auto err = settle_metadata(run))
        std::fprintf(stderr, "troupe: recovery: %s\n", describe(err).c_str());
    resumed = std::move(report->resume);
    if (rerun_row) {
      // As it stands after recovery: a run whose troupe died was settled just now.
      if (auto now_row = db->runs_by_prefix(rerun_row->run_id, 1); now_row && !now_row->empty())
        rerun_row = now_row->front();
      auto jobs = db->jobs(rerun_row->run_id);
      if (!jobs) {
        std::fprintf(stderr, "troupe: rerun: %s\n", describe(jobs.error()).c_str());
        return exit_code::internal;
      }
      rerun_request req{opts.rerun_from, opts.allow_changed, opts.reason, asker()};
      auto choice = choose_rerun(p, *rerun_row, *jobs, req);
      if (!choice) {
        std::fprintf(stderr, "troupe: rerun: %s\n", describe(choice.error()).c_str());
        return exit_code::usage;
      }
      auto now = caf::make_timestamp();
      choice->event.ts = now;
      auto reopened = db->reopen_run(rerun_row->run_id, rerun_row->epoch,
                                     owner_token(host.hostname), host.hostname,
                                     static_cast<int32_t>(::getpid()), choice->stages,
                                     choice->event, now);
      if (!reopened || !*reopened) {
        std::fprintf(stderr, "troupe: rerun: run %s %s\n", rerun_row->run_id.c_str(),
                     !reopened ? describe(reopened.error()).c_str()
                               : "changed meanwhile (taken or restarted by another process)");
        return exit_code::internal;
      }
      auto row = db->runs_by_prefix(rerun_row->run_id, 1);
      auto jobs_now = db->jobs(rerun_row->run_id);
      auto attempts = db->attempts(rerun_row->run_id);
      if (!row || row->empty() || !jobs_now || !attempts) {
        std::fprintf(stderr, "troupe: rerun: cannot read run %s back\n",
                     rerun_row->run_id.c_str());
        return exit_code::internal;
      }
      resumed = resumable_run{row->front(), *jobs_now, *attempts};
      std::printf("rerun of %s: %s\n", rerun_row->run_id.c_str(),
                  choice->event.message.c_str());
      // The record as it was stays beside the new one.
      const auto& dir = rerun_row->run_dir;
      for (int n = 1; n < 1000; ++n) {
        auto keep = dir + "/metadata.rerun-" + std::to_string(n) + ".json";
        if (::access(keep.c_str(), F_OK) == 0)
          continue;
        std::error_code ec;
        std::filesystem::copy_file(dir + "/metadata.json", keep, ec);
        break;
      }
    }
  }

  // SIGINT/SIGTERM/SIGHUP are blocked since main()'s first line (before any
  // thread exists); they go to the forwarder alone, which also takes one
  // that arrived before it started.
  std::signal(SIGPIPE, SIG_IGN);

  auto now = caf::make_timestamp();
  auto run_dir = resumed                ? caf::expected<std::string>{resumed->run.run_dir}
                 : p.artifacts_in_store ? caf::expected<std::string>{std::string{}}
                                        : create_run_folder(opts.output, now);
  if (!run_dir) {
    // --output is the user's: a path that cannot hold run folders is a usage error.
    std::fprintf(stderr, "troupe: --output %s: %s\n", opts.output.c_str(),
                 describe(run_dir.error()).c_str());
    return exit_code::usage;
  }

  run_start start;
  start.run_id = resumed ? resumed->run.run_id : make_run_id(now);
  start.run_dir = *run_dir;
  start.started_at = resumed ? resumed->run.created_at : now;
  start.pid = static_cast<int32_t>(::getpid());
  start.owner = owner_token(host.hostname);
  start.host = host;
  start.host.gpus = static_cast<int32_t>(gpus->read().size());
  start.output_dir = opts.output;
  start.enabled = enabled;
  start.sample_interval = *interval;
  start.grace = *grace;
  start.environment = inherited;
  start.resumed = resumed.has_value();
  if (resumed)
    start.epoch = resumed->run.epoch;
  start.params = *params;
  if (resumed) {
    // A resumed run goes on with the values it started with.
    start.params = params_of(resumed->run);
  }
  auto plan = make_run_plan(p, start);
  auto& rec = plan.record;
  plan.jitter = [gen = std::mt19937_64{std::random_device{}()}]() mutable {
    return std::uniform_real_distribution<double>(-1.0, 1.0)(gen);
  };
  bool any_http = false;
  for (auto& s : p.stages)
    any_http = any_http || s.is_http;
  if (resumed)
    running_order::restore(plan.record, resumed->jobs, resumed->attempts);

  bool tty = ::isatty(STDOUT_FILENO) == 1;
  progress_display display{stdout, tty, *run_dir};
  if (!run_dir->empty())
    std::printf("%s\n", run_dir->c_str());
  display.line("run " + rec.run_id + " of '" + p.name + "': " + std::to_string(p.stages.size())
               + " stage(s)");

  int code = exit_code::internal;
  {
    caf::actor_system_config cfg;
    register_types(cfg);
    configure_scheduler(cfg);
    // The threads that write run folders; declared before the actor system,
    // so that they outlive every actor that posts to them.
    auto pool = std::make_shared<io_pool>();
    caf::actor_system sys{cfg};
    caf::scoped_actor self{sys};
    auto runner = std::make_shared<process_runner>(true, true);
    plan.record.host.process_tracking = runner->tracking();
    std::string node_error;
    local_node_options lo;
    lo.runner = runner;
    lo.http = any_http;
    lo.slots = opts.node_slots;
    lo.nvml = gpus;
    auto local = make_local_node(sys, lo, node_error);
    if (!local) {
      std::fprintf(stderr, "troupe: %s\n", node_error.c_str());
      return exit_code::usage;
    }
    auto writer = spawn_artifact_writer(sys, pool, *run_dir);
    store_actor store_writer;
    if (db)
      store_writer = spawn_store_writer(sys, std::move(db));
    run_supervisor_deps deps;
    deps.node = local->node;
    deps.writer = writer;
    deps.store = store_writer;
    deps.listener = caf::actor_cast<progress_listener_actor>(self);
    const auto run_id = rec.run_id;  // `rec` is moved into the supervisor
    auto sup = spawn_run_supervisor(sys, std::move(plan), std::move(deps));
    {
      signal_forwarder signals{sup};
      self->send(sup, start_atom_v);
      auto outcome = await_run(
        self, sup, [&](progress_event& ev) { display.on_event(ev); },
        [&] { display.tick(); });
      if (outcome.finished) {
        code = outcome.exit_code;
      } else {
        auto why = "run_supervisor died: " + describe(outcome.died);
        std::fprintf(stderr, "troupe: %s; the run is recorded as failed (lost)\n", why.c_str());
        auto recorded = record_lost_run(self, {run_id, *run_dir, url, writer, store_writer},
                                        why);
        if (!recorded)
          std::fprintf(stderr, "troupe: recording the lost run: %s\n",
                       describe(recorded.error()).c_str());
        code = exit_code::internal;
      }
    }
    self->send_exit(local->node, caf::exit_reason::user_shutdown);
    self->send_exit(local->sampler, caf::exit_reason::user_shutdown);
    self->send_exit(local->gpus, caf::exit_reason::user_shutdown);
    self->send_exit(writer, caf::exit_reason::user_shutdown);
    if (store_writer)
      self->send_exit(store_writer, caf::exit_reason::user_shutdown);
  }
  // The last line names the record, and only one that exists.
  if (run_dir->empty())
    return code;  // artifacts: store: the store has the run (troupe show)
  auto metadata = *run_dir + "/metadata.json";
  if (::access(metadata.c_str(), F_OK) == 0)
    std::printf("%s\n", metadata.c_str());
  else
    std::fprintf(stderr, "troupe: no metadata.json could be written in %s\n", run_dir->c_str());
  return code;
}

} // namespace troupe
