#include "runtime/recovery.hpp"

#include "adapters/artifacts/atomic_file.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"

#include <nlohmann/json.hpp>

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

namespace {

// Moves one unfinished run forward: its live attempts fail with `code`
// (their leftover processes killed), its jobs fail (or wait for a new
// attempt when `resume`), and the run fails (or is taken over by `pid`).
caf::error settle_run(store& db, run_row run, failure_code code, const std::string& why,
                      bool resume, int32_t pid, recovery_report& report) {
  auto jobs = db.jobs(run.run_id);
  if (!jobs)
    return std::move(jobs.error());
  auto attempts = db.attempts(run.run_id);
  if (!attempts)
    return std::move(attempts.error());
  auto now = caf::make_timestamp();
  const auto code_name = to_string(code);
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
    a.failure = code;
    a.error = why;
    a.finished_at = now;
    a.updated_at = now;
    event(a.job, a.attempt, event_level::error,
          "attempt " + std::to_string(a.attempt) + " " + code_name + ": " + why,
          meta().add("pid", a.pid).add("leftover_killed", killed > 0).str());
    b.attempts.push_back(a);
    ++report.attempts_interrupted;
  }
  for (auto j : *jobs) {
    bool live = j.status == stage_status::running || j.status == stage_status::retrying;
    if (resume && live) {
      j.status = stage_status::retrying;
      j.failure = code;
      j.error = why;
      event(j.job, j.attempts, event_level::warn,
            code_name + "; resume: true, so a new attempt follows");
    } else if (!resume && live) {
      j.status = stage_status::failed;
      j.failure = code;
      j.error = why;
      event(j.job, j.attempts, event_level::error, "failed: " + code_name);
    } else if (!resume && j.status == stage_status::pending) {
      j.status = stage_status::skipped;
      j.error = "not run: the run " + std::string(code == failure_code::lost ? "was lost"
                                                                             : "was interrupted");
    } else {
      continue;
    }
    j.updated_at = now;
    b.jobs.push_back(j);
  }
  if (resume) {
    event("", 0, event_level::warn,
          "run resumed by troupe process " + std::to_string(pid) + " (" + why + ")",
          meta().add("previous_pid", run.pid).add("pid", pid).str());
    run.pid = pid;
  } else {
    run.status = run_status::failed;
    run.failure = code;
    run.reason = why;
    run.finished_at = now;
    event("", 0, event_level::error, "run failed: " + code_name + ": " + why);
    ++report.runs_failed;
  }
  run.updated_at = now;
  b.runs.push_back(run);
  auto res = db.apply(b);
  if (!res)
    return std::move(res.error());
  report.messages.push_back("run " + run.run_id + (resume ? " resumed: " : " failed: ") + why);
  if (!resume)
    report.settled.push_back(run);
  return caf::none;
}

} // namespace

caf::expected<recovery_report> reconcile(store& db, const std::string& host, int32_t pid,
                                         const std::string& resume_file) {
  recovery_report report;
  auto runs = db.unfinished_runs();
  if (!runs)
    return std::move(runs.error());
  for (auto& run : *runs) {
    if (run.host != host || run.pid == pid || troupe_alive(run.pid))
      continue;
    auto why = "troupe process " + std::to_string(run.pid) + " on " + run.host
               + " died while the run was " + to_string(run.status);
    bool resume = !report.resume && !resume_file.empty() && run.pipeline_file == resume_file
                  && run.status == run_status::running;
    auto run_id = run.run_id;
    if (auto err = settle_run(db, run, failure_code::interrupted, why, resume, pid, report))
      return err;
    if (resume) {
      resumable_run r;
      auto fresh = db.runs_by_prefix(run_id, 1);
      auto jobs = db.jobs(run_id);
      auto attempts = db.attempts(run_id);
      if (!fresh)
        return std::move(fresh.error());
      if (!jobs)
        return std::move(jobs.error());
      if (!attempts)
        return std::move(attempts.error());
      r.run = fresh->at(0);
      r.jobs = std::move(*jobs);
      r.attempts = std::move(*attempts);
      report.resume = std::move(r);
    }
  }
  return report;
}

caf::expected<recovery_report> fail_lost_run(store& db, const std::string& run_id,
                                             const std::string& why) {
  recovery_report report;
  auto runs = db.runs_by_prefix(run_id, 2);
  if (!runs)
    return std::move(runs.error());
  if (runs->size() != 1 || runs->front().run_id != run_id)
    return caf::make_error(errc::store_error, "run " + run_id + " is not in " + db.location());
  auto& run = runs->front();
  if (is_terminal(run.status))
    return report;  // it finished after all: nothing to settle
  if (auto err = settle_run(db, run, failure_code::lost, why, false, run.pid, report))
    return err;
  return report;
}

caf::error settle_metadata(const std::string& run_dir, const run_row& run) {
  auto path = run_dir + "/metadata.json";
  auto text = read_file(path);
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    return caf::make_error(errc::os_error, path + ": not JSON (" + e.what() + ")");
  }
  if (!doc.is_object())
    return caf::make_error(errc::os_error, path + ": not a JSON object");
  auto status = doc.value("status", std::string{});
  auto parsed = parse_run_status(status);
  if (parsed && is_terminal(*parsed))
    return caf::none;  // the run's own record stands
  doc["status"] = to_string(run.status);
  doc["failure_code"] = to_string(run.failure);
  doc["reason"] = run.reason;
  doc["finished_at"] = iso8601(run.finished_at ? *run.finished_at : caf::make_timestamp());
  return write_atomically(path, doc.dump(2) + "\n");
}

} // namespace troupe
