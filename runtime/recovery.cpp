#include "runtime/recovery.hpp"

#include "messages/errors.hpp"
#include "messages/json.hpp"

#include <csignal>
#include <fstream>
#include <sstream>

namespace troupe {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A stage leader the dead runner left behind: alive, still leading its
// process group, and carrying the run's id in its environment (set by troupe).
bool is_stage_of(int32_t pid, const std::string& run_id) {
  if (pid <= 0 || ::getpgid(pid) != pid)
    return false;
  auto env = read_file("/proc/" + std::to_string(pid) + "/environ");
  return env.find("TROUPE_RUN_ID=" + run_id + '\0') != std::string::npos;
}

} // namespace

bool troupe_alive(int32_t pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM))
    return false;
  auto comm = read_file("/proc/" + std::to_string(pid) + "/comm");
  return comm.rfind("troupe", 0) == 0;
}

caf::expected<recovery_report> reconcile(store& db, const std::string& host, int32_t pid,
                                         const std::string& resume_file) {
  recovery_report report;
  auto runs = db.unfinished_runs();
  if (!runs)
    return std::move(runs.error());
  for (auto& run : *runs) {
    if (run.host != host || run.pid == pid || troupe_alive(run.pid))
      continue;
    auto jobs = db.jobs(run.run_id);
    if (!jobs)
      return std::move(jobs.error());
    auto attempts = db.attempts(run.run_id);
    if (!attempts)
      return std::move(attempts.error());
    auto now = caf::make_timestamp();
    auto why = "troupe process " + std::to_string(run.pid) + " on " + run.host
               + " died while the run was " + to_string(run.status);
    bool resume = !report.resume && !resume_file.empty() && run.pipeline_file == resume_file
                  && run.status == run_status::running;
    store_batch b;
    auto event = [&](std::string job, int32_t attempt, event_level level, std::string msg,
                     std::string meta_json = "{}") {
      event_row e;
      e.ts = now;
      e.run_id = run.run_id;
      e.job = std::move(job);
      e.attempt = attempt;
      e.level = level;
      e.message = std::move(msg);
      e.meta = std::move(meta_json);
      b.events.push_back(std::move(e));
    };
    for (auto a : *attempts) {
      if (a.status != stage_status::running && a.status != stage_status::pending)
        continue;
      int32_t killed = 0;
      if (is_stage_of(a.pid, run.run_id) && ::kill(-a.pid, SIGKILL) == 0)
        killed = 1;
      report.processes_killed += killed;
      a.status = stage_status::failed;
      a.failure = failure_code::interrupted;
      a.error = why;
      a.finished_at = now;
      a.updated_at = now;
      event(a.job, a.attempt, event_level::error, "attempt " + std::to_string(a.attempt)
                                                   + " interrupted: " + why,
            meta().add("pid", a.pid).add("leftover_killed", killed > 0).str());
      b.attempts.push_back(a);
      ++report.attempts_interrupted;
    }
    for (auto j : *jobs) {
      bool live = j.status == stage_status::running || j.status == stage_status::retrying;
      if (resume && live) {
        j.status = stage_status::retrying;
        j.failure = failure_code::interrupted;
        j.error = why;
        event(j.job, j.attempts, event_level::warn,
              "interrupted; resume: true, so a new attempt follows");
      } else if (!resume && live) {
        j.status = stage_status::failed;
        j.failure = failure_code::interrupted;
        j.error = why;
        event(j.job, j.attempts, event_level::error, "failed: interrupted");
      } else if (!resume && j.status == stage_status::pending) {
        j.status = stage_status::skipped;
        j.error = "not run: the run was interrupted";
      } else {
        continue;
      }
      j.updated_at = now;
      b.jobs.push_back(j);
    }
    if (resume) {
      event("", 0, event_level::warn, "run resumed by troupe process " + std::to_string(pid)
                                        + " (" + why + ")",
            meta().add("previous_pid", run.pid).add("pid", pid).str());
      run.pid = pid;
    } else {
      run.status = run_status::failed;
      run.failure = failure_code::interrupted;
      run.reason = why;
      run.finished_at = now;
      event("", 0, event_level::error, "run failed: interrupted: " + why);
      ++report.runs_failed;
    }
    run.updated_at = now;
    b.runs.push_back(run);
    auto res = db.apply(b);
    if (!res)
      return std::move(res.error());
    report.messages.push_back("run " + run.run_id + (resume ? " resumed: " : " failed: ") + why);
    if (resume) {
      resumable_run r{run, *jobs, {}};
      auto fresh = db.attempts(run.run_id);
      if (!fresh)
        return std::move(fresh.error());
      r.attempts = std::move(*fresh);
      auto fresh_jobs = db.jobs(run.run_id);
      if (!fresh_jobs)
        return std::move(fresh_jobs.error());
      r.jobs = std::move(*fresh_jobs);
      report.resume = std::move(r);
    }
  }
  return report;
}

} // namespace troupe
