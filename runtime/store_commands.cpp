#include "runtime/store_commands.hpp"

#include "runtime/run_ref.hpp"

#include "actors/running_order.hpp"
#include "adapters/store/store.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"
#include "runtime/duration.hpp"
#include "runtime/liveness.hpp"
#include "runtime/recovery.hpp"
#include "runtime/run_command.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <set>

namespace troupe {

namespace {

std::string url_of(const store_command_options& o) {
  return o.db.empty() ? o.output + "/troupe.db" : o.db;
}

// Opens the store for reading; a missing SQLite file is an error here, not
// a new empty database.
caf::expected<std::unique_ptr<store>> open_for_reading(const store_command_options& o) {
  auto url = url_of(o);
  if (auto err = check_store_url(url))
    return err;  // the same words as `troupe run --db`
  bool pg = url.rfind("postgres", 0) == 0;
  auto path = url.rfind("sqlite:", 0) == 0 ? url.substr(7) : url;
  if (!pg && !std::filesystem::exists(path))
    return caf::make_error(errc::bad_input,
                           "no store at " + path
                             + " (run `troupe run` first, give --db or -o, or --server "
                               "for a coordinator; troupe status says where commands read)");
  return open_store(url);
}

int fail(const caf::error& err) {
  std::fprintf(stderr, "troupe: %s\n", describe(err).c_str());
  return err.category() == caf::atom("troupe")
             && err.code() == static_cast<uint8_t>(errc::bad_input)
           ? exit_code::usage
           : exit_code::internal;
}

// A UTC time to the second, with its zone: 2026-11-23T09:14:03Z.
std::string short_ts(const caf::optional<caf::timestamp>& t) {
  if (!t)
    return "-";
  auto s = iso8601(*t);  // 2026-11-23T09:14:03.127Z
  return s.substr(0, 19) + "Z";
}

std::string seconds(const caf::optional<caf::timestamp>& a,
                    const caf::optional<caf::timestamp>& b) {
  if (!a || !b)
    return "-";
  return format_duration(*b - *a);
}

std::string cpu_text(double s) {
  if (s < 0)
    return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, s < 10 ? "%.2fs" : "%.1fs", s);
  return buf;
}

std::string bytes_text(int64_t b) {
  if (b < 0)
    return "-";
  char buf[32];
  if (b < (1 << 20))
    std::snprintf(buf, sizeof buf, "%.0fK", static_cast<double>(b) / 1024);
  else if (b < (1LL << 30))
    std::snprintf(buf, sizeof buf, "%.1fM", static_cast<double>(b) / (1 << 20));
  else
    std::snprintf(buf, sizeof buf, "%.2fG", static_cast<double>(b) / (1LL << 30));
  return buf;
}

// Rows of cells printed with every column as wide as its widest cell (the
// last column is not padded), so any content keeps the table aligned.
class table {
public:
  explicit table(std::vector<std::string> header) {
    rows_.push_back(std::move(header));
  }
  void add(std::vector<std::string> row) {
    rows_.push_back(std::move(row));
  }
  void print(std::FILE* out) const {
    std::vector<size_t> width;
    for (auto& r : rows_)
      for (size_t i = 0; i < r.size(); ++i) {
        width.resize(std::max(width.size(), r.size()));
        width[i] = std::max(width[i], r[i].size());
      }
    for (auto& r : rows_) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) {
        line += r[i];
        if (i + 1 < r.size())
          line += std::string(width[i] - r[i].size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ')
        line.pop_back();
      std::fprintf(out, "%s\n", line.c_str());
    }
  }

private:
  std::vector<std::vector<std::string>> rows_;
};

std::string status_text(const run_row& r) {
  static const auto host = this_host();
  return status_with_owner(r, host, caf::make_timestamp());
}

std::string code_text(failure_code c) {
  return c == failure_code::none ? "-" : to_string(c);
}

// The run whose id is `id` or starts with it, or whose run folder is `id`
// (its name, e.g. 20261124_061530, or its path): runtime/run_ref.
caf::expected<run_row> find_run(store& db, const std::string& id) {
  if (id.empty())
    return caf::make_error(errc::bad_input, "give a run id (see `troupe runs`)");
  auto l = resolve_run(db, id);
  switch (l.result) {
    case run_lookup::outcome::found: return l.run;
    case run_lookup::outcome::ambiguous:
      return caf::make_error(errc::bad_input, ambiguity_text(id, l));
    case run_lookup::outcome::error: return caf::make_error(errc::store_error, l.error);
    case run_lookup::outcome::none: break;
  }
  return caf::make_error(errc::bad_input, "no run " + id + " in " + db.location()
                                            + " (give a run id, a unique prefix of one, or "
                                              "a run folder; see `troupe runs`)");
}

} // namespace

// The store and the run that `o.run_id` names, for show and events.
caf::expected<std::pair<std::unique_ptr<store>, run_row>>
open_run(const store_command_options& o) {
  auto db = open_for_reading(o);
  if (!db)
    return std::move(db.error());
  auto run = find_run(**db, o.run_id);
  if (!run)
    return std::move(run.error());
  return std::make_pair(std::move(*db), std::move(*run));
}

int runs_command(const store_command_options& o) {
  run_filter f;
  if (!o.status.empty()) {
    auto st = parse_run_status(o.status);
    if (!st)
      return fail(caf::make_error(errc::bad_input,
                                  "--status " + o.status
                                    + ": not one of queued, running, succeeded, failed, "
                                      "timed_out, cancelled"));
    f.status = *st;
  }
  if (o.limit < 1)
    return fail(caf::make_error(errc::bad_input, "--limit must be at least 1"));
  f.limit = o.limit;
  f.pipeline = o.pipeline;
  auto db = open_for_reading(o);
  if (!db)
    return fail(db.error());
  auto runs = (*db)->runs(f);
  if (!runs)
    return fail(runs.error());
  std::vector<std::string> shown;
  if (!o.json)
    for (auto& r : *runs)
      shown.push_back(shortest_unique(**db, r.run_id));
  print_runs(*runs, o.json, (*db)->location(), shown);
  return 0;
}

// What launched a run, for BY: manual, api, a schedule's id ("sch-… (trigger)"
// when triggered by hand), "-" for rows written before stores said.
static std::string launched_text(const run_row& r) {
  if (!r.schedule_id.empty())
    return r.schedule_id + (r.launched_by == "trigger" ? " (trigger)" : "");
  return r.launched_by.empty() ? "-" : r.launched_by;
}

void print_runs(const std::vector<run_row>& runs, bool json, const std::string& where,
                const std::vector<std::string>& shown) {
  if (json) {
    std::fputs(runs_document(runs).c_str(), stdout);
    return;
  }
  table t{{"RUN", "PIPELINE", "STATUS", "STARTED", "ELAPSED", "BY", "REASON"}};
  for (size_t i = 0; i < runs.size(); ++i) {
    auto& r = runs[i];
    t.add({i < shown.size() ? shown[i] : r.run_id, r.pipeline, status_text(r),
           short_ts(r.created_at), seconds(r.started_at, r.finished_at),
           launched_text(r), r.reason});
  }
  t.print(stdout);
  if (runs.empty())
    std::printf("(no runs in %s)\n", where.c_str());
}

int show_command(const store_command_options& o) {
  auto opened = open_run(o);
  if (!opened)
    return fail(opened.error());
  auto& [db, found] = *opened;
  auto* run = &found;
  auto jobs = db->jobs(run->run_id);
  if (!jobs)
    return fail(jobs.error());
  auto attempts = db->attempts(run->run_id);
  if (!attempts)
    return fail(attempts.error());
  print_show(*run, *jobs, *attempts, o.json);
  return 0;
}

// The state probes: one line per probe and key, before / after / delta
// (pipelines.md, "State probes"); a probe that failed says why.
void print_state(const run_row& run) {
  auto state = nlohmann::json::parse(run.state.empty() ? "{}" : run.state, nullptr, false);
  if (!state.is_object() || !state.contains("probes") || state["probes"].empty())
    return;
  auto text = [](const nlohmann::json& v) {
    if (v.is_null())
      return std::string("-");
    if (v.is_string())
      return v.get<std::string>();
    return v.dump();
  };
  table t{{"PROBE", "KEY", "BEFORE", "AFTER", "DELTA"}};
  std::set<std::string> names;
  for (auto& p : state["probes"])
    names.insert(p.value("name", ""));
  for (auto& name : names) {
    auto side = [&](const char* which) {
      auto& all = state[which];
      return all.contains(name) ? all[name] : nlohmann::json(nullptr);
    };
    auto before = side("state_before"), after = side("state_after");
    std::set<std::string> keys;
    for (auto* obj : {&before, &after})
      if (obj->is_object())
        for (auto& [k, v] : obj->items())
          keys.insert(k);
    for (auto& k : keys) {
      auto d = state["delta"].contains(name) && state["delta"][name].contains(k)
                 ? state["delta"][name][k]
                 : nlohmann::json(nullptr);
      auto delta = text(d);
      if (d.is_number() && d.get<double>() > 0)
        delta = "+" + delta;
      t.add({name, k, before.is_object() && before.contains(k) ? text(before[k]) : "-",
             after.is_object() && after.contains(k) ? text(after[k]) : "-", delta});
    }
    for (auto& p : state["probes"])
      if (p.value("name", "") == name && p.value("status", "") != "ok")
        t.add({name, "(" + p.value("phase", "") + ")", p.value("status", ""),
               p["error"].is_string() ? p["error"].get<std::string>() : "", ""});
  }
  t.print(stdout);
  std::printf("\n");
}

void print_show(const run_row& shown, const std::vector<job_row>& jobs_list,
                const std::vector<attempt_row>& attempts_list, bool json) {
  const auto* run = &shown;
  const auto* jobs = &jobs_list;
  const auto* attempts = &attempts_list;
  if (json) {
    std::fputs(show_document(*run, *jobs, *attempts).c_str(), stdout);
    return;
  }
  std::printf("run       %s\npipeline  %s (%s)\nstatus    %s%s\nby        %s\n"
              "host      %s (pid %d)\nstarted   %s\nfinished  %s\nelapsed   %s\nfolder    %s\n\n",
              run->run_id.c_str(), run->pipeline.c_str(), run->pipeline_file.c_str(),
              status_text(*run).c_str(),
              run->reason.empty() ? "" : ("  (" + run->reason + ")").c_str(),
              launched_text(*run).c_str(), run->host.c_str(),
              run->pid, short_ts(run->started_at).c_str(), short_ts(run->finished_at).c_str(),
              seconds(run->started_at, run->finished_at).c_str(),
              run->run_dir.empty() ? "(none: artifacts: store)" : run->run_dir.c_str());
  if (auto params = params_of(*run); !params.empty()) {
    std::string text;
    for (auto& [k, v] : params)
      text += (text.empty() ? "" : ", ") + k + "=" + v;
    std::printf("params    %s\n\n", text.c_str());
  }
  print_state(*run);
  // One line per stage (ELAPSED: first start to end, retry waits included;
  // CPU summed and MAXRSS the highest over its attempts), then one per
  // attempt with its own figures, as sacct shows a job and its steps.
  table t{{"#", "STAGE", "STATUS", "ATTEMPT", "STRATEGY", "ELAPSED", "CPU", "MAXRSS", "EXIT", "HTTP",
           "CODE", "ERROR"}};
  auto exit_text = [](const attempt_row& a) {
    return a.exit_code ? std::to_string(*a.exit_code)
           : a.signal  ? "sig" + std::to_string(*a.signal)
                       : std::string("-");
  };
  for (auto& j : *jobs) {
    std::vector<const attempt_row*> mine;
    for (auto& a : *attempts)
      if (a.job == j.job)
        mine.push_back(&a);
    double cpu = -1;
    int64_t rss = -1;
    caf::optional<caf::timestamp> first, last;
    for (auto* a : mine) {
      auto f = parse_attempt_stats(a->stats);
      if (f.cpu_seconds >= 0)
        cpu = std::max(cpu, 0.0) + f.cpu_seconds;
      rss = std::max(rss, f.peak_rss_bytes);
      if (!first && a->started_at)
        first = a->started_at;
      if (a->finished_at)
        last = a->finished_at;
    }
    const attempt_row* latest = mine.empty() ? nullptr : mine.back();
    t.add({std::to_string(j.position + 1), j.job, to_string(j.status),
           mine.empty() ? "-" : std::to_string(mine.size()), latest ? latest->strategy : "-",
           seconds(first, last), cpu_text(cpu), bytes_text(rss),
           latest ? exit_text(*latest) : "-",
           latest && latest->http_status ? std::to_string(*latest->http_status) : "-",
           code_text(j.failure), j.error});
    if (mine.size() < 2)
      continue;
    for (auto* a : mine) {
      auto f = parse_attempt_stats(a->stats);
      t.add({"", "  try " + std::to_string(a->attempt), to_string(a->status), "", a->strategy,
             format_duration(std::chrono::milliseconds(a->duration_ms)),
             cpu_text(f.cpu_seconds), bytes_text(f.peak_rss_bytes), exit_text(*a),
             a->http_status ? std::to_string(*a->http_status) : "-", code_text(a->failure),
             a->error});
    }
  }
  t.print(stdout);
}

int events_command(const store_command_options& o) {
  auto level = parse_event_level(o.level);
  if (!level)
    return fail(caf::make_error(errc::bad_input,
                                "--level " + o.level + ": not one of info, warn, error"));
  auto opened = open_run(o);
  if (!opened)
    return fail(opened.error());
  auto& [db, run] = *opened;
  if (o.follow && !o.json) {
    // The store, looked at every 250 ms until the run has ended (the same
    // lines as through the API's stream).
    int64_t after = 0;
    for (;;) {
      auto now = db->runs_by_prefix(run.run_id, 1);
      bool ended = now && !now->empty() && is_terminal(now->front().status);
      auto batch = db->events_after(run.run_id, after, 1000);
      if (!batch)
        return fail(batch.error());
      std::vector<event_row> shown;
      for (auto& e : *batch) {
        after = std::max(after, e.id);
        if (e.level >= *level)
          shown.push_back(e);
      }
      print_events(shown, false);
      std::fflush(stdout);
      if (ended && batch->empty())
        return 0;
      if (batch->empty())
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }
  auto events = db->events(run.run_id, *level);
  if (!events)
    return fail(events.error());
  print_events(*events, o.json);
  return 0;
}

void print_events(const std::vector<event_row>& events, bool json) {
  if (json) {
    std::fputs(events_document(events).c_str(), stdout);
    return;
  }
  for (auto& e : events) {
    auto where = e.job.empty() ? std::string("run")
                               : e.job + (e.attempt > 0 ? "#" + std::to_string(e.attempt) : "");
    std::printf("%s  %-5s  %-22s %s\n", iso8601(e.ts).c_str(), to_string(e.level).c_str(),
                where.c_str(), e.message.c_str());
  }
}

int recover_command(const store_command_options& o) {
  auto url = url_of(o);
  if (!check_store_url(url) && url.rfind("postgres", 0) != 0
      && !std::filesystem::exists(url.rfind("sqlite:", 0) == 0 ? url.substr(7) : url)) {
    std::printf("nothing to recover: no store at %s\n", url.c_str());
    return 0;
  }
  auto db = open_for_reading(o);
  if (!db)
    return fail(db.error());
  // The same reconciliation `troupe run` does before it starts, on demand:
  // every unfinished run whose owner is lost fails as interrupted (none is
  // resumed: no run is being started here).
  auto host = this_host();
  auto report = reconcile(**db, host, static_cast<int32_t>(::getpid()), std::string{});
  if (!report)
    return fail(report.error());
  for (auto& line : report->messages)
    std::printf("%s\n", line.c_str());
  int code = 0;
  for (auto& run : report->settled) {
    if (auto err = settle_metadata(run)) {
      std::fprintf(stderr, "troupe: %s\n", describe(err).c_str());
      code = exit_code::internal;
    }
  }
  if (report->settled.empty())
    std::printf("nothing to recover: no unfinished run in %s has lost its owner\n",
                (*db)->location().c_str());
  else
    std::printf("recovered %zu run(s); killed %d leftover process(es)\n", report->settled.size(),
                report->processes_killed);
  return code;
}

} // namespace troupe

namespace troupe {

namespace {

// The words of process `pid`'s command line ("" when unreadable).
std::vector<std::string> cmdline_of(int32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::vector<std::string> words;
  for (std::string w; std::getline(in, w, '\0');)
    words.push_back(w);
  return words;
}

} // namespace

int cancel_local_command(const store_command_options& o) {
  auto opened = open_run(o);
  if (!opened)
    return fail(opened.error());
  auto& [db, r] = *opened;
  if (is_terminal(r.status)) {
    std::fprintf(stderr, "troupe: run %s has ended (%s); there is nothing to cancel\n",
                 r.run_id.c_str(), to_string(r.status).c_str());
    return exit_code::usage;
  }
  auto host = this_host();
  auto owner = owner_liveness(r, host, caf::make_timestamp());
  if (owner.lost) {
    std::fprintf(stderr, "troupe: run %s: its owner is lost (%s); `troupe recover` ends it\n",
                 r.run_id.c_str(), owner.why.c_str());
    return exit_code::usage;
  }
  // A `troupe run` (or rerun) on this host is told with a signal, as Ctrl-C
  // would; anything else (a coordinator, another host) through the store,
  // whose owner looks for cancel requests every second.
  auto words = r.host == host ? cmdline_of(r.pid) : std::vector<std::string>{};
  bool local_run = words.size() > 1 && (words[1] == "run" || words[1] == "rerun");
  if (local_run) {
    sigval cookie{};
    cookie.sival_int = local_cancel_cookie;
    if (::sigqueue(r.pid, SIGTERM, cookie) != 0) {
      std::fprintf(stderr, "troupe: run %s: cannot signal its troupe process %d: %s\n",
                   r.run_id.c_str(), r.pid, std::strerror(errno));
      return exit_code::internal;
    }
    std::printf("cancel requested for run %s (its troupe run, process %d, stops it)\n",
                r.run_id.c_str(), r.pid);
    return 0;
  }
  auto asked = db->request_cancel(r.run_id, caf::make_timestamp());
  if (!asked)
    return fail(asked.error());
  if (!*asked) {
    std::fprintf(stderr, "troupe: run %s has ended; there is nothing to cancel\n",
                 r.run_id.c_str());
    return exit_code::usage;
  }
  std::printf("cancel requested for run %s through the store (its owner %s stops it within "
              "a few seconds)\n",
              r.run_id.c_str(), r.owner.empty() ? r.host.c_str() : r.owner.c_str());
  return 0;
}

} // namespace troupe
