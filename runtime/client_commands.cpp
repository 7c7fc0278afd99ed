#include "runtime/client_commands.hpp"

#include "runtime/run_command.hpp"

#include "actors/running_order.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"
#include "runtime/api_client.hpp"
#include "runtime/cli/source.hpp"
#include "runtime/progress.hpp"
#include "runtime/system.hpp"

#include <nlohmann/json.hpp>

#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>

#include <chrono>
#include <functional>
#include <cstdio>
#include <map>
#include <thread>

namespace troupe {

using json = nlohmann::ordered_json;

namespace {

// The client for commands that need a coordinator (one at the default
// address when none is configured); false with a message on a bad config.
bool make_client(const client_flags& flags, bool need, client_settings& out) {
  if (auto err = resolve_client_settings(flags, out)) {
    std::fprintf(stderr, "troupe: %s\n", err->c_str());
    return false;
  }
  if (out.server.empty() && need) {
    out.server = default_server;
    out.from = "the default";
  }
  return true;
}

// The client of the coordinator `o` names; nullopt (said) on a bad config.
template <class Options>
std::optional<api_client> connect(const Options& o) {
  client_settings s;
  if (!make_client(o, true, s))
    return std::nullopt;
  return api_client{s};
}

// 4xx answers are the caller's to fix (exit 2); no answer or 5xx: exit 4.
int fail(const http_reply& r, const client_settings& s) {
  std::fprintf(stderr, "troupe: %s\n", reply_error(r, s.server).c_str());
  return r.status >= 400 && r.status < 500 ? exit_code::usage : exit_code::internal;
}

std::optional<json> body_of(const http_reply& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_discarded())
    return std::nullopt;
  return j;
}

// The exit code `troupe run` gives a run that ended like `r`.
int exit_of(const run_row& r) {
  switch (r.status) {
    case run_status::succeeded: return exit_code::ok;
    case run_status::timed_out: return exit_code::stage_timed_out;
    case run_status::cancelled: return exit_code::cancelled;
    case run_status::failed:
      return r.failure == failure_code::artifact_write_failed
                 || r.failure == failure_code::store_write_failed
                 || r.failure == failure_code::lost || r.failure == failure_code::interrupted
               ? exit_code::internal
               : exit_code::stage_failed;
    default: return exit_code::internal;
  }
}

bool split_env(const std::vector<std::string>& list, json& out) {
  out = json::object();
  for (auto& kv : list) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "troupe: --env %s: not KEY=VALUE\n", kv.c_str());
      return false;
    }
    out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return true;
}

// The launch options every launch and schedule takes; false (said) on a bad --env.
bool add_run_options(json& body, int priority, const std::vector<std::string>& enable,
                     const std::vector<std::string>& env_list,
                     const std::vector<std::string>& param_list) {
  if (priority != 0)
    body["priority"] = priority;
  if (!enable.empty())
    body["enable"] = enable;
  json env;
  if (!split_env(env_list, env))
    return false;
  if (!env.empty())
    body["env"] = env;
  auto params = parse_param_args(param_list);
  if (!params) {
    std::fprintf(stderr, "troupe: %s\n", describe(params.error()).c_str());
    return false;
  }
  if (!params->empty())
    body["params"] = *params;
  return true;
}

// What a run looked like at the last look, stage by stage, for --follow.
struct follow_state {
  std::map<std::string, int32_t> max_attempts;  // from "attempt N of M started"
  std::map<std::string, std::string> command;   // from the start events' meta
  std::map<std::pair<std::string, int32_t>, int64_t> delay_ms;  // retry waits
  std::map<std::string, size_t> started;        // attempts whose start was shown
  std::map<std::string, std::pair<stage_status, size_t>> finished;  // last end shown
};

void note_event(follow_state& st, const event_row& e) {
  if (e.job.empty())
    return;
  auto meta = json::parse(e.meta, nullptr, false);
  if (!meta.is_object())
    return;
  auto of = e.message.find(" of ");
  if (e.message.rfind("attempt ", 0) == 0 && of != std::string::npos
      && e.message.find(" started") != std::string::npos) {
    st.max_attempts[e.job] = std::atoi(e.message.c_str() + of + 4);
    if (meta.contains("command") && meta["command"].is_string())
      st.command[e.job] = meta["command"].get<std::string>();
  }
  if (meta.contains("delay_ms") && meta["delay_ms"].is_number())
    st.delay_ms[{e.job, e.attempt}] = meta["delay_ms"].get<int64_t>();
}

stage_record record_of(const follow_state& st, const job_row& j,
                       const std::vector<attempt_row>& attempts) {
  stage_record s;
  s.name = j.job;
  s.status = j.status;
  s.failure = j.failure;
  s.error = j.error;
  auto m = st.max_attempts.find(j.job);
  s.max_attempts = m == st.max_attempts.end() ? 1 : m->second;
  auto c = st.command.find(j.job);
  s.command = c == st.command.end() ? std::string{} : c->second;
  std::optional<caf::timestamp> first, last;
  for (auto& a : attempts) {
    attempt_record r;
    r.attempt = a.attempt;
    r.status = a.status;
    r.duration = std::chrono::milliseconds(a.duration_ms);
    auto d = st.delay_ms.find({j.job, a.attempt});
    if (d != st.delay_ms.end())
      r.retry_delay = std::chrono::milliseconds(d->second);
    if (!first && a.started_at)
      first = *a.started_at;
    if (a.finished_at)
      last = *a.finished_at;
    s.attempts.push_back(r);
  }
  if (first && last)
    s.duration = *last - *first;
  s.stderr_log = running_order::attempt_log(
    j.job, attempts.empty() ? 1 : attempts.back().attempt, "stderr.log");
  return s;
}

struct run_view {
  run_row run;
  std::vector<job_row> jobs;
  std::vector<attempt_row> attempts;
  std::map<std::string, std::pair<std::string, int32_t>> stages;  // command, max_attempts
};

std::optional<run_view> fetch_run(api_client& api, const std::string& id, http_reply* err) {
  auto r = api.get("/api/runs/" + id);
  if (r.status != 200) {
    if (err != nullptr)
      *err = r;
    return std::nullopt;
  }
  auto j = body_of(r);
  if (!j)
    return std::nullopt;
  run_view v;
  v.run = j->get<run_row>();
  for (auto& job : (*j)["jobs"]) {
    v.jobs.push_back(job.get<job_row>());
    v.stages[v.jobs.back().job] = {job.value("command", ""), job.value("max_attempts", 1)};
    for (auto& a : job["attempts"]) {
      v.attempts.push_back(a.get<attempt_row>());
      v.attempts.back().run_id = v.run.run_id;
    }
  }
  return v;
}

// Shows what changed since the last look as `troupe run`'s lines: each
// attempt's start, then its end (retrying, or the stage's end), in order,
// also for attempts that began and ended between two looks.
void show_changes(progress_display& display, follow_state& st, const run_view& v) {
  auto total = static_cast<int32_t>(v.jobs.size());
  for (auto& [name, s] : v.stages) {
    if (!s.first.empty())
      st.command[name] = s.first;
    st.max_attempts[name] = s.second;
  }
  for (size_t i = 0; i < v.jobs.size(); ++i) {
    const auto& j = v.jobs[i];
    std::vector<attempt_row> mine;
    for (auto& a : v.attempts)
      if (a.job == j.job)
        mine.push_back(a);
    progress_event ev;
    ev.run_id = v.run.run_id;
    ev.index = static_cast<int32_t>(i);
    ev.total = total;
    ev.run = v.run.status;
    auto& started = st.started[j.job];
    auto& finished = st.finished[j.job];  // (status, attempts whose end was shown)
    bool stage_ended = j.status == stage_status::succeeded || j.status == stage_status::failed
                       || j.status == stage_status::timed_out
                       || j.status == stage_status::cancelled
                       || j.status == stage_status::retrying;
    for (size_t k = 1; k <= mine.size(); ++k) {
      auto upto = std::vector<attempt_row>(mine.begin(), mine.begin() + static_cast<long>(k));
      if (started < k) {
        started = k;
        ev.kind = progress_event::kind_t::stage_started;
        ev.stage = record_of(st, j, upto);
        ev.stage.status = stage_status::running;
        display.on_event(ev);
      }
      bool last = k == mine.size();
      if (last && !stage_ended)
        break;
      if (finished.second >= k)
        continue;
      ev.kind = progress_event::kind_t::stage_finished;
      ev.stage = record_of(st, j, upto);
      if (!last) {
        // It ended and a retry followed.
        ev.stage.status = stage_status::retrying;
        ev.stage.error = upto.back().error;
      } else if (j.status == stage_status::retrying
                 && st.delay_ms.count({j.job, upto.back().attempt}) == 0) {
        break;  // its "retry scheduled" event (with the wait) is in the same commit: soon
      }
      display.on_event(ev);
      finished = {ev.stage.status, k};
    }
  }
}

// Reads run `id`'s event stream to its end, every event once: a dropped
// connection is reopened with Last-Event-ID (for up to about 30 s).
// `on_event` sees each event, `after_chunk` runs after each piece received.
// 0 once the run has ended, else the exit code of the failure (said).
int read_event_stream(api_client& api, const std::string& id,
                      const std::function<void(const event_row&)>& on_event,
                      const std::function<void()>& after_chunk = {}) {
  std::string last_id;
  http_reply reply;
  for (int tries = 0; tries < 60; ++tries) {
    bool ended = false;
    sse_parser parser;
    std::map<std::string, std::string> headers;
    if (!last_id.empty())
      headers["Last-Event-ID"] = last_id;
    reply = api.stream("/api/runs/" + id + "/events/stream", headers,
                       [&](const std::string& chunk) {
                         parser.feed(chunk, [&](const sse_parser::event& e) {
                           if (!e.id.empty())
                             last_id = e.id;
                           if (e.type == "end") {
                             ended = true;
                             return true;
                           }
                           auto j = json::parse(e.data, nullptr, false);
                           if (j.is_object())
                             on_event(j.get<event_row>());
                           return true;
                         });
                         if (after_chunk)
                           after_chunk();
                         return true;
                       });
    if (reply.status != 200 && reply.status != 0)
      return fail(reply, api.settings());
    if (ended)
      return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  std::fprintf(stderr, "troupe: lost the coordinator at %s: %s\n",
               api.settings().server.c_str(), reply.error.c_str());
  return exit_code::internal;
}

// Follows run `id` until it ends: with `display`, as progress lines.
int follow_run(api_client& api, const std::string& id, progress_display* display) {
  follow_state st;
  bool dirty = false;
  auto rc = read_event_stream(
    api, id,
    [&](const event_row& ev) {
      note_event(st, ev);
      dirty = dirty || !ev.job.empty();
    },
    [&] {
      if (dirty && display != nullptr) {
        dirty = false;
        if (auto v = fetch_run(api, id, nullptr))
          show_changes(*display, st, *v);
      }
    });
  if (rc != 0)
    return rc;
  http_reply err;
  auto v = fetch_run(api, id, &err);
  if (!v)
    return fail(err, api.settings());
  int code = exit_of(v->run);
  if (display != nullptr) {
    show_changes(*display, st, *v);
    progress_event ev;
    ev.run_id = id;
    ev.kind = progress_event::kind_t::run_finished;
    ev.index = -1;
    ev.total = static_cast<int32_t>(v->jobs.size());
    ev.run = v->run.status;
    ev.exit_code = code;
    for (auto& j : v->jobs) {
      stage_record s;
      s.name = j.job;
      s.status = j.status;
      s.error = j.error;
      ev.stages.push_back(s);
    }
    display->on_event(ev);
  } else {
    std::printf("run %s %s%s (exit %d)\n", id.c_str(), to_string(v->run.status).c_str(),
                v->run.reason.empty() ? "" : (": " + v->run.reason).c_str(), code);
  }
  return code;
}

// Ctrl-C (SIGINT), SIGTERM or SIGHUP while a client follows run `id`: the
// client detaches (the run goes on; exit 5), or with `cancel` asks the
// coordinator to cancel it first (exit 130). The signals are blocked in
// every thread (main); this thread takes them with sigwait, so that the
// HTTP call and the message happen outside a signal handler.
void watch_interrupts(const client_settings& s, const std::string& id, bool cancel) {
  std::thread([s, id, cancel] {
    auto set = stop_signal_set();
    int sig = 0;
    if (sigwait(&set, &sig) != 0)
      return;
    std::fflush(stdout);
    if (!cancel) {
      std::fprintf(stderr, "\ntroupe: detached; the run goes on — troupe cancel %s (or troupe "
                           "events %s --follow to follow it again)\n",
                   id.c_str(), id.c_str());
      std::fflush(stderr);
      std::_Exit(exit_code::detached);
    }
    api_client api{s};
    auto r = api.post("/api/runs/" + id + "/cancel", "{}");
    if (r.status == 202 || r.status == 200)
      std::fprintf(stderr, "\ntroupe: cancelled run %s (%s)\n", id.c_str(), ::strsignal(sig));
    else
      std::fprintf(stderr, "\ntroupe: could not cancel run %s: %s\n", id.c_str(),
                   r.error.empty() ? r.body.c_str() : r.error.c_str());
    std::fflush(stderr);
    std::_Exit(exit_code::cancelled);
  }).detach();
}

void unblock_stop_signals() {
  auto set = stop_signal_set();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

} // namespace

std::optional<api_client> connect_client(const client_flags& flags) {
  return connect(flags);
}

int reply_failed(const http_reply& r, const client_settings& s) {
  return fail(r, s);
}

int launch_command(const launch_options& o) {
  // Only a follow takes the stop signals itself (watch_interrupts).
  if (!o.follow && !o.wait)
    unblock_stop_signals();
  client_settings s;
  if (!make_client(o, true, s))
    return exit_code::usage;
  json body{{"pipeline", o.pipeline}};
  if (!add_run_options(body, o.priority, o.enable, o.env, o.params))
    return exit_code::usage;
  api_client api{s};
  auto r = api.post("/api/runs", body.dump());
  if (r.status != 201)
    return fail(r, s);
  auto j = body_of(r);
  auto id = j ? (*j)["id"].get<std::string>() : std::string{};
  if (o.json && !o.follow && !o.wait) {
    std::fputs(r.body.c_str(), stdout);
    return 0;
  }
  if (!o.follow && !o.wait) {
    std::printf("%s\n", id.c_str());
    return 0;
  }
  watch_interrupts(s, id, o.cancel_on_interrupt);
  if (o.wait)
    return follow_run(api, id, nullptr);
  auto run_dir = (*j)["run"]["run_dir"].get<std::string>();
  bool tty = ::isatty(STDOUT_FILENO) == 1;
  progress_display display{stdout, tty, run_dir};
  display.set_tail_source([&api, id](const std::string& rel, size_t n) {
    // logs/<stage>[.attempt-N].stderr.log -> the logs endpoint
    std::vector<std::string> lines;
    auto name = rel.substr(rel.find('/') + 1);
    auto stage = name.substr(0, name.find('.'));
    int attempt = 1;
    auto at = name.find(".attempt-");
    if (at != std::string::npos)
      attempt = std::atoi(name.c_str() + at + 9);
    auto r = api.get("/api/runs/" + id + "/logs/" + stage + "?stream=stderr&attempt="
                     + std::to_string(attempt));
    if (r.status != 200)
      return lines;
    size_t pos = 0;
    while (pos < r.body.size()) {
      auto nl = r.body.find('\n', pos);
      lines.push_back(r.body.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
      pos = nl == std::string::npos ? r.body.size() : nl + 1;
    }
    if (lines.size() > n)
      lines.erase(lines.begin(), lines.end() - static_cast<long>(n));
    return lines;
  });
  std::printf("%s\n", run_dir.c_str());
  http_reply err;
  auto v = fetch_run(api, id, &err);
  display.line("run " + id + " of '" + o.pipeline + "': "
               + std::to_string(v ? v->jobs.size() : 0) + " stage(s)");
  return follow_run(api, id, &display);
}

int cancel_command(const client_options& o, const std::string& run_id) {
  auto conn = connect(o);
  if (!conn)
    return exit_code::usage;
  auto& api = *conn;
  const auto& s = api.settings();
  auto r = api.post("/api/runs/" + run_id + "/cancel", "{}");
  if (r.status != 202)
    return fail(r, s);
  std::printf("cancel requested for run %s\n", run_id.c_str());
  return 0;
}

namespace {

// GET `path` as a document. With `raw` (--json) the answer is printed as it
// came and there is none (rc 0); an error is said (rc its exit code).
std::optional<json> fetch_document(api_client& api, const std::string& path, bool raw, int& rc) {
  auto r = api.get(path);
  rc = 0;
  if (r.status == 200 && raw) {
    std::fputs(r.body.c_str(), stdout);
    return std::nullopt;
  }
  auto j = r.status == 200 ? body_of(r) : std::nullopt;
  if (!j)
    rc = fail(r, api.settings());
  return j;
}

} // namespace

int status_command(const store_command_options& o) {
  source_choice where;
  if (auto err = choose_source(o, where)) {
    std::fprintf(stderr, "troupe: %s\n", err->c_str());
    return exit_code::usage;
  }
  // The server launch, cancel, schedule and pipelines ask: the configured
  // one, else the default; whether it answers.
  client_settings s;
  if (!make_client(o, true, s))
    return exit_code::usage;
  api_client api{s};
  auto health = api.get("/health");
  auto j = health.status == 200 ? body_of(health) : std::nullopt;
  std::string answer =
    j ? ": coordinator " + (*j).value("coordinator", std::string("?")) + " answers"
      : ": no answer (" + (health.error.empty() ? reply_error(health, s.server) : health.error)
          + ")";
  bool local_exists =
    where.store.rfind("postgres", 0) == 0 || ::access(where.store.c_str(), F_OK) == 0;
  std::printf("server       %s (from %s)%s\n", s.server.c_str(), s.from.c_str(), answer.c_str());
  std::printf("token        %s\n", s.token.empty() ? "none" : "given");
  std::printf("local store  %s%s\n", where.store.c_str(), local_exists ? "" : " (not there)");
  std::printf("runs, show, events, logs, rerun read: %s (%s)\n",
              where.use_server ? ("the server " + where.server.server).c_str()
                               : ("the local store " + where.store).c_str(),
              where.rule.c_str());
  std::printf("launch, cancel, schedule, pipelines ask: the server %s\n", s.server.c_str());
  std::printf("(order: --server, -o/--db, $TROUPE_SERVER, server: in %s, %s; a configured "
              "server that does not answer falls back to the local store)\n",
              client_config_file().empty() ? "~/.config/troupe/config.yaml"
                                           : client_config_file().c_str(),
              default_server);
  return j ? 0 : exit_code::internal;
}

int pipelines_command(const client_options& o) {
  auto conn = connect(o);
  if (!conn)
    return exit_code::usage;
  auto& api = *conn;
  int rc = 0;
  auto j = fetch_document(api, "/api/pipelines", o.json, rc);
  if (!j)
    return rc;
  for (auto& p : (*j)["pipelines"]) {
    std::string stages;
    for (auto& st : p["stages"])
      stages += (stages.empty() ? "" : ", ")
                + (st.value("optional", false) ? "[" + st["name"].get<std::string>() + "]"
                                                : st["name"].get<std::string>());
    std::printf("%s%s%s\n  stages: %s\n", p["name"].get<std::string>().c_str(),
                p["description"].get<std::string>().empty() ? "" : "  ",
                p["description"].get<std::string>().c_str(), stages.c_str());
    for (auto& d : p["params"]) {
      std::string how = d["required"].get<bool>() ? "required"
                        : d["default"].is_null()   ? "optional"
                                                   : "default " + d["default"].get<std::string>();
      std::printf("  param %s (%s)%s%s\n", d["name"].get<std::string>().c_str(), how.c_str(),
                  d["description"].get<std::string>().empty() ? "" : ": ",
                  d["description"].get<std::string>().c_str());
    }
    if (!p["api_env"].empty()) {
      std::string names;
      for (auto& n : p["api_env"])
        names += (names.empty() ? "" : ", ") + n.get<std::string>();
      std::printf("  api_env: %s\n", names.c_str());
    }
    for (auto& sc : p["schedules"])
      std::printf("  schedule %s: %s %s%s\n", sc["id"].get<std::string>().c_str(),
                  sc["kind"].get<std::string>().c_str(), sc["spec"].get<std::string>().c_str(),
                  sc["enabled"].get<bool>() ? "" : " (disabled)");
  }
  return 0;
}

int api_rerun_command(const rerun_options& o) {
  auto conn = connect(o);
  if (!conn)
    return exit_code::usage;
  auto& api = *conn;
  const auto& s = api.settings();
  json body = json::object();
  if (!o.from.empty())
    body["from"] = o.from;
  if (!o.reason.empty())
    body["reason"] = o.reason;
  if (o.allow_changed)
    body["allow_changed"] = true;
  const char* user = std::getenv("USER");
  char host[256] = "";
  ::gethostname(host, sizeof host - 1);
  body["by"] = std::string(user != nullptr ? user : "?") + "@" + host;
  auto r = api.post("/api/runs/" + o.run_id + "/rerun", body.dump());
  if (r.status != 202)
    return fail(r, s);
  std::printf("rerun of %s: running at %s (troupe events %s --follow)\n", o.run_id.c_str(),
              s.server.c_str(), o.run_id.c_str());
  return 0;
}

namespace {

void print_schedules(const json& list) {
  std::printf("%-22s %-16s %-9s %-16s %-8s %-8s %-24s %s\n", "SCHEDULE", "PIPELINE", "KIND",
              "WHEN", "OVERLAP", "ENABLED", "NEXT", "LAST RUN");
  for (auto& s : list) {
    std::string when = s["kind"] == "once"       ? s.value("at", "")
                       : s["kind"] == "interval" ? "every " + s.value("every", "")
                                                 : s.value("cron", "");
    auto next = s["next_run_at"].is_string() ? s["next_run_at"].get<std::string>() : "-";
    auto last = s["last_run_id"].is_string() ? s["last_run_id"].get<std::string>() : "-";
    std::printf("%-22s %-16s %-9s %-16s %-8s %-8s %-24s %s\n",
                s["id"].get<std::string>().c_str(), s["pipeline"].get<std::string>().c_str(),
                s["kind"].get<std::string>().c_str(), when.c_str(),
                s["overlap"].get<std::string>().c_str(), s["enabled"].get<bool>() ? "yes" : "no",
                next.c_str(), last.c_str());
  }
}

} // namespace

// troupe schedule show ID [--last N] [--json]: the schedule, readable, and
// its last N events.
int show_schedule(api_client& api, const schedule_options& o) {
  int rc = 0;
  auto j = fetch_document(api, "/api/schedules/" + o.id + "?limit=1000", o.json, rc);
  if (!j)
    return rc;
  auto& sc = *j;
  // The newest events: page on to the end.
  auto events = sc["events"];
  for (auto next = sc["next_after"]; next.is_number();) {
    auto more = body_of(api.get("/api/schedules/" + o.id + "?limit=1000&after="
                                + std::to_string(next.get<int64_t>())));
    if (!more)
      break;
    for (auto& e : (*more)["events"])
      events.push_back(e);
    next = (*more)["next_after"];
  }
  auto text = [](const json& v) { return v.is_string() ? v.get<std::string>() : std::string("-"); };
  std::string when = sc["kind"] == "once"       ? "once at " + text(sc["at"])
                     : sc["kind"] == "interval" ? "every " + text(sc["every"])
                                                : "cron " + text(sc["cron"]);
  std::printf("schedule  %s\npipeline  %s\nwhen      %s\nenabled   %s\noverlap   %s\n"
              "catch_up  %s\npriority  %d\nnext run  %s\nlast run  %s\n",
              text(sc["id"]).c_str(), text(sc["pipeline"]).c_str(), when.c_str(),
              sc["enabled"].get<bool>() ? "yes" : "no (paused)", text(sc["overlap"]).c_str(),
              text(sc["catch_up"]).c_str(), sc["priority"].get<int>(),
              text(sc["next_run_at"]).c_str(), text(sc["last_run_id"]).c_str());
  if (!sc["env"].empty())
    std::printf("env       %s\n", sc["env"].dump().c_str());
  size_t from = events.size() > static_cast<size_t>(std::max(0, o.last))
                  ? events.size() - static_cast<size_t>(std::max(0, o.last))
                  : 0;
  std::printf("\nlast %zu of %zu event(s) (--last N for more, --json for all):\n",
              events.size() - from, events.size());
  for (size_t i = from; i < events.size(); ++i) {
    auto& e = events[i];
    std::printf("  %s  %-10s %s\n", text(e["ts"]).c_str(), text(e["kind"]).c_str(),
                text(e["message"]).c_str());
  }
  return 0;
}

// troupe schedule trigger ID: a run of the schedule now (POST .../trigger).
int trigger_schedule(api_client& api, const schedule_options& o) {
  auto r = api.post("/api/schedules/" + o.id + "/trigger", "{}");
  if (r.status != 201)
    return fail(r, api.settings());
  if (o.json) {
    std::fputs(r.body.c_str(), stdout);
    return 0;
  }
  auto j = body_of(r);
  auto id = j ? (*j)["id"].get<std::string>() : std::string{};
  std::printf("%s\n", id.c_str());
  std::fprintf(stderr, "schedule %s triggered: run %s (its next tick is unchanged; follow it "
                       "with troupe events %s --follow)\n",
               o.id.c_str(), id.c_str(), id.c_str());
  return 0;
}

int schedule_command(const schedule_options& o) {
  auto conn = connect(o);
  if (!conn)
    return exit_code::usage;
  auto& api = *conn;
  const auto& s = api.settings();
  if (o.action == "list") {
    auto r = api.get("/api/schedules");
    if (r.status != 200)
      return fail(r, s);
    if (o.json) {
      std::fputs(r.body.c_str(), stdout);
      return 0;
    }
    auto j = body_of(r);
    print_schedules(j ? (*j)["schedules"] : json::array());
    return 0;
  }
  if (o.action == "show")
    return show_schedule(api, o);
  if (o.action == "trigger")
    return trigger_schedule(api, o);
  // One timing: --every, --cron or --at (each names the others when mixed).
  std::vector<std::string> kinds;
  if (!o.every.empty())
    kinds.push_back("--every");
  if (!o.cron.empty())
    kinds.push_back("--cron");
  if (!o.at.empty())
    kinds.push_back("--at");
  if (kinds.size() > 1) {
    std::fprintf(stderr, "troupe: schedule %s: %s and %s cannot be given together: a schedule "
                         "has one timing\n",
                 o.action.c_str(), kinds[0].c_str(), kinds[1].c_str());
    return exit_code::usage;
  }
  if (o.action == "add" && kinds.empty()) {
    std::fprintf(stderr, "troupe: schedule add: give its timing: --every, --cron or --at\n");
    return exit_code::usage;
  }
  if (o.action == "edit") {
    json body = json::object();
    if (!o.every.empty())
      body["every"] = o.every;
    if (!o.cron.empty())
      body["cron"] = o.cron;
    if (!o.at.empty())
      body["at"] = o.at;
    if (!o.overlap.empty())
      body["overlap"] = o.overlap;
    if (!o.catch_up.empty())
      body["catch_up"] = o.catch_up;
    if (!add_run_options(body, o.priority, o.enable, o.env, o.params))  // (only what was given)
      return exit_code::usage;
    if (body.empty()) {
      std::fprintf(stderr, "troupe: schedule edit: nothing to change (give --every, --cron, "
                           "--at, --overlap, --catch-up, --priority, --enable, --env or "
                           "--param)\n");
      return exit_code::usage;
    }
    auto r = api.patch("/api/schedules/" + o.id, body.dump());
    if (r.status != 200)
      return fail(r, s);
    if (o.json) {
      std::fputs(r.body.c_str(), stdout);
      return 0;
    }
    auto j = body_of(r);
    auto next = j && (*j)["next_run_at"].is_string() ? (*j)["next_run_at"].get<std::string>()
                                                      : "none";
    std::printf("schedule %s changed; next run at %s\n", o.id.c_str(), next.c_str());
    return 0;
  }
  if (o.action == "add") {
    json body{{"pipeline", o.pipeline}};
    if (!o.every.empty()) {
      body["kind"] = "interval";
      body["every"] = o.every;
    } else if (!o.cron.empty()) {
      body["kind"] = "cron";
      body["cron"] = o.cron;
    } else {
      body["kind"] = "once";
      body["at"] = o.at;
    }
    if (!o.overlap.empty())
      body["overlap"] = o.overlap;
    if (!o.catch_up.empty())
      body["catch_up"] = o.catch_up;
    if (o.disabled)
      body["enabled"] = false;
    if (!add_run_options(body, o.priority, o.enable, o.env, o.params))
      return exit_code::usage;
    auto r = api.post("/api/schedules", body.dump());
    if (r.status != 201)
      return fail(r, s);
    if (o.json) {
      std::fputs(r.body.c_str(), stdout);
      return 0;
    }
    auto j = body_of(r);
    auto next = (*j)["next_run_at"].is_string() ? (*j)["next_run_at"].get<std::string>() : "none";
    std::printf("%s\n", (*j)["id"].get<std::string>().c_str());
    std::fprintf(stderr, "schedule %s of '%s': next run at %s\n",
                 (*j)["id"].get<std::string>().c_str(), o.pipeline.c_str(), next.c_str());
    return 0;
  }
  if (o.action == "enable" || o.action == "disable" || o.action == "resume"
      || o.action == "pause") {
    bool on = o.action == "enable" || o.action == "resume";
    json body{{"enabled", on}};
    auto r = api.patch("/api/schedules/" + o.id, body.dump());
    if (r.status != 200)
      return fail(r, s);
    auto j = body_of(r);
    auto next = j && (*j)["next_run_at"].is_string() ? (*j)["next_run_at"].get<std::string>()
                                                      : "none";
    if (on)
      std::printf("schedule %s resumed; next run at %s (ticks missed while paused are not "
                  "caught up)\n", o.id.c_str(), next.c_str());
    else
      std::printf("schedule %s paused; no run is launched until `troupe schedule resume %s`\n",
                  o.id.c_str(), o.id.c_str());
    return 0;
  }
  if (o.action == "delete") {
    auto r = api.del("/api/schedules/" + o.id);
    if (r.status != 204)
      return fail(r, s);
    std::printf("schedule %s deleted\n", o.id.c_str());
    return 0;
  }
  std::fprintf(stderr, "troupe: schedule: unknown action '%s'\n", o.action.c_str());
  return exit_code::usage;
}

int api_runs_command(const store_command_options& o) {
  auto conn = connect(o);
  if (!conn)
    return exit_code::usage;
  auto& api = *conn;
  const auto& s = api.settings();
  std::string q = "?limit=" + std::to_string(o.limit) + (o.json ? "" : "&short_ids=1");
  if (!o.status.empty())
    q += "&status=" + o.status;
  if (!o.pipeline.empty())
    q += "&pipeline=" + o.pipeline;
  auto r = api.get("/api/runs" + q);
  if (r.status != 200)
    return fail(r, s);
  auto j = body_of(r);
  std::vector<run_row> runs;
  std::vector<std::string> shown;
  for (auto& x : (*j)["runs"]) {
    runs.push_back(x.get<run_row>());
    shown.push_back(x.value("short_id", runs.back().run_id));
  }
  print_runs(runs, o.json, s.server, shown);
  return 0;
}

int api_show_command(const store_command_options& o) {
  auto conn = connect(o);
  if (!conn)
    return exit_code::usage;
  auto& api = *conn;
  const auto& s = api.settings();
  http_reply err;
  auto v = fetch_run(api, o.run_id, &err);
  if (!v)
    return fail(err, s);
  print_show(v->run, v->jobs, v->attempts, o.json);
  return 0;
}

int api_events_command(const store_command_options& o) {
  client_settings s;
  if (!make_client(o, true, s))
    return exit_code::usage;
  auto level = parse_event_level(o.level);
  if (!level) {
    std::fprintf(stderr, "troupe: --level %s: not one of info, warn, error\n", o.level.c_str());
    return exit_code::usage;
  }
  api_client api{s};
  auto shown = [&](const event_row& e) { return e.level >= *level; };
  if (!o.follow) {
    auto r = api.get("/api/runs/" + o.run_id + "/events?limit=10000");
    if (r.status != 200)
      return fail(r, s);
    std::vector<event_row> events;
    auto body = body_of(r);  // (held: a temporary's insides would dangle in the loop)
    if (!body || !body->contains("events"))
      return fail(r, s);
    for (auto& x : (*body)["events"]) {
      auto e = x.get<event_row>();
      if (shown(e))
        events.push_back(std::move(e));
    }
    print_events(events, o.json);
    return 0;
  }
  // Follow: every event once, until the run ends.
  return read_event_stream(api, o.run_id, [&](const event_row& ev) {
    if (shown(ev))
      print_events({ev}, o.json);
    std::fflush(stdout);
  });
}

} // namespace troupe
