#include "runtime/store_commands.hpp"

#include "actors/running_order.hpp"
#include "adapters/store/store.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"

#include <cstdio>
#include <filesystem>

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
                           "no store at " + path + " (run `troupe run` first, or give --db)");
  return open_store(url);
}

int fail(const caf::error& err) {
  std::fprintf(stderr, "troupe: %s\n", describe(err).c_str());
  return err.category() == caf::atom("troupe")
             && err.code() == static_cast<uint8_t>(errc::bad_input)
           ? exit_code::usage
           : exit_code::internal;
}

std::string short_ts(const caf::optional<caf::timestamp>& t) {
  if (!t)
    return "-";
  auto s = iso8601(*t);  // 2026-11-23T09:14:03.127Z
  return s.substr(0, 10) + " " + s.substr(11, 8);
}

std::string seconds(const caf::optional<caf::timestamp>& a,
                    const caf::optional<caf::timestamp>& b) {
  if (!a || !b)
    return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", std::chrono::duration<double>(*b - *a).count());
  return buf;
}

std::string code_text(failure_code c) {
  return c == failure_code::none ? "-" : to_string(c);
}

// The run whose id is `id` or starts with it, or whose run folder is `id`
// (its name, e.g. 20261124_061530, or its path).
caf::expected<run_row> find_run(store& db, const std::string& id) {
  if (id.empty())
    return caf::make_error(errc::bad_input, "give a run id (see `troupe runs`)");
  constexpr int32_t shown = 10;
  auto found = db.runs_by_prefix(id, shown + 1);
  if (!found)
    return std::move(found.error());
  for (auto& r : *found)
    if (r.run_id == id)
      return r;
  if (found->empty()) {
    // A run folder: the path as printed by `troupe run`, or its last part.
    namespace fs = std::filesystem;
    auto as_path = fs::absolute(fs::path(id)).lexically_normal();
    if (!as_path.has_filename())
      as_path = as_path.parent_path();
    bool bare_name = id.find('/') == std::string::npos;
    run_filter all;
    all.limit = 100000;
    auto runs = db.runs(all);
    if (!runs)
      return std::move(runs.error());
    for (auto& r : *runs) {
      auto dir = fs::path(r.run_dir).lexically_normal();
      if (dir == as_path || (bare_name && dir.filename() == id))
        return r;
    }
    return caf::make_error(errc::bad_input, "no run " + id + " in " + db.location()
                                              + " (give a run id, a unique prefix of one, or "
                                                "a run folder; see `troupe runs`)");
  }
  if (found->size() > 1) {
    std::string list;
    for (size_t i = 0; i < found->size() && i < static_cast<size_t>(shown); ++i) {
      auto& r = (*found)[i];
      list += "\n  " + r.run_id + "  " + r.pipeline + "  " + to_string(r.status) + "  "
              + std::filesystem::path(r.run_dir).filename().string();
    }
    if (found->size() > static_cast<size_t>(shown))
      list += "\n  ...";
    return caf::make_error(errc::bad_input, "run id prefix " + id + " is ambiguous; it matches:"
                                              + list + "\ngive more characters");
  }
  return found->front();
}

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

} // namespace

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
  if (o.json) {
    std::fputs(runs_document(*runs).c_str(), stdout);
    return 0;
  }
  std::printf("%-36s  %-16s  %-9s  %-19s  %-8s  %s\n", "RUN", "PIPELINE", "STATUS", "STARTED",
              "WALL", "REASON");
  for (auto& r : *runs)
    std::printf("%-36s  %-16s  %-9s  %-19s  %-8s  %s\n", r.run_id.c_str(), r.pipeline.c_str(),
                to_string(r.status).c_str(), short_ts(r.created_at).c_str(),
                seconds(r.started_at, r.finished_at).c_str(), r.reason.c_str());
  if (runs->empty())
    std::printf("(no runs in %s)\n", (*db)->location().c_str());
  return 0;
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
  if (o.json) {
    std::fputs(show_document(*run, *jobs, *attempts).c_str(), stdout);
    return 0;
  }
  std::printf("run       %s\npipeline  %s (%s)\nstatus    %s%s\nhost      %s (pid %d)\n"
              "started   %s\nfinished  %s\nfolder    %s\n\n",
              run->run_id.c_str(), run->pipeline.c_str(), run->pipeline_file.c_str(),
              to_string(run->status).c_str(),
              run->reason.empty() ? "" : ("  (" + run->reason + ")").c_str(), run->host.c_str(),
              run->pid, short_ts(run->started_at).c_str(), short_ts(run->finished_at).c_str(),
              run->run_dir.c_str());
  std::printf("%-3s %-20s %-9s %-4s %-8s %-9s %-9s %-6s %-5s %s\n", "#", "STAGE", "STATUS", "TRY",
              "STRATEGY", "RESULT", "CODE", "EXIT", "HTTP", "ERROR");
  for (auto& j : *jobs) {
    std::printf("%-3d %-20s %-9s %-4s %-8s %-9s %-9s %-6s %-5s %s\n", j.position + 1,
                j.job.c_str(), to_string(j.status).c_str(), "", "", "",
                code_text(j.failure).c_str(), "", "", "");
    for (auto& a : *attempts) {
      if (a.job != j.job)
        continue;
      auto dur = std::to_string(a.duration_ms) + "ms";
      std::printf("%-3s %-20s %-9s %-4d %-8s %-9s %-9s %-6s %-5s %s\n", "", "", "", a.attempt,
                  a.strategy.c_str(), to_string(a.status).c_str(), code_text(a.failure).c_str(),
                  a.exit_code ? std::to_string(*a.exit_code).c_str() : "-",
                  a.http_status ? std::to_string(*a.http_status).c_str() : "-",
                  a.error.c_str());
    }
  }
  return 0;
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
  auto events = db->events(run.run_id, *level);
  if (!events)
    return fail(events.error());
  if (o.json) {
    std::fputs(events_document(*events).c_str(), stdout);
    return 0;
  }
  for (auto& e : *events) {
    auto where = e.job.empty() ? std::string("run")
                               : e.job + (e.attempt > 0 ? "#" + std::to_string(e.attempt) : "");
    std::printf("%s  %-5s  %-22s %s\n", iso8601(e.ts).c_str(), to_string(e.level).c_str(),
                where.c_str(), e.message.c_str());
  }
  return 0;
}

} // namespace troupe
