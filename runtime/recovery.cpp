#include "runtime/recovery.hpp"

#include "adapters/artifacts/atomic_file.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"
#include "actors/running_order.hpp"
#include "runtime/liveness.hpp"

#include <nlohmann/json.hpp>

#include "adapters/process/cgroup_jobs.hpp"

#include <dirent.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

namespace troupe {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string comm_of(int32_t pid) {
  auto c = read_file("/proc/" + std::to_string(pid) + "/comm");
  while (!c.empty() && c.back() == '\n')
    c.pop_back();
  return c;
}

// The run's own last word, when its metadata.json ended it but the store's
// last writes were lost (a full disk): status, failure and error by stage
// and attempt name. Empty when metadata.json is missing or unfinished.
struct own_record {
  bool ended = false;
  run_status status = run_status::failed;
  failure_code failure = failure_code::none;
  std::string reason;
  std::map<std::string, std::tuple<stage_status, failure_code, std::string>> stages;
  std::map<std::pair<std::string, int32_t>, std::tuple<stage_status, failure_code, std::string>>
    attempts;
};

own_record read_own_record(const std::string& run_dir) {
  own_record out;
  if (run_dir.empty())
    return out;  // artifacts: store: no folder
  auto doc = nlohmann::json::parse(read_file(run_dir + "/metadata.json"), nullptr, false);
  if (!doc.is_object())
    return out;
  auto status = parse_run_status(doc.value("status", std::string{}));
  if (!status || !is_terminal(*status))
    return out;
  auto code = [](const nlohmann::json& j) {
    return j.contains("failure_code") && j["failure_code"].is_string()
             ? parse_failure_code(j["failure_code"].get<std::string>())
                 .value_or(failure_code::unknown)
             : failure_code::none;
  };
  auto text = [](const nlohmann::json& j, const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string{};
  };
  out.ended = true;
  out.status = *status;
  out.failure = code(doc);
  out.reason = text(doc, "reason");
  if (doc.contains("stages") && doc["stages"].is_array()) {
    for (auto& s : doc["stages"]) {
      auto name = text(s, "name");
      auto st = parse_stage_status(text(s, "status")).value_or(stage_status::failed);
      out.stages[name] = {st, code(s), text(s, "error")};
      if (s.contains("attempts") && s["attempts"].is_array())
        for (auto& a : s["attempts"])
          out.attempts[{name, a.value("attempt", 0)}] = {
            parse_stage_status(text(a, "status")).value_or(stage_status::failed), code(a),
            text(a, "error")};
    }
  }
  return out;
}

// Moves one unfinished run forward: its live attempts fail with `code`, its
// jobs fail (or wait for a new attempt when `resume`) or, not reached, are
// skipped, and the run fails (or is taken over by `owner`). Every change
// is an event. On this host (`local`), what is left of its processes is
// killed and named.
caf::error settle_run(store& db, run_row run, failure_code code, const std::string& why,
                      bool resume, bool local, int32_t pid, const std::string& owner,
                      recovery_report& report) {
  auto jobs = db.jobs(run.run_id);
  if (!jobs)
    return std::move(jobs.error());
  auto attempts = db.attempts(run.run_id);
  if (!attempts)
    return std::move(attempts.error());
  auto now = caf::make_timestamp();
  const auto code_name = to_string(code);
  // metadata.json said how the run ended but the store did not hear it:
  // the store takes the run's own word, not a guess.
  auto own = resume ? own_record{} : read_own_record(run.run_dir);
  // Taking the run over: the next epoch. From this batch on, whatever its
  // old owner still sends (a process we thought dead) is refused.
  run.epoch += 1;
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
  std::vector<std::string> killed;
  if (local) {
    std::vector<std::string> cgroups;
    for (auto& a : *attempts)
      if (!a.cgroup.empty())
        cgroups.push_back(a.cgroup);
    killed = kill_leftovers(run.run_id, cgroups);
    report.processes_killed += static_cast<int32_t>(killed.size());
  }
  if (!killed.empty()) {
    std::string list;
    for (auto& k : killed)
      list += (list.empty() ? "" : ", ") + k;
    event("", 0, event_level::warn,
          "killed " + std::to_string(killed.size()) + " leftover process(es): " + list,
          meta().add("killed", static_cast<int32_t>(killed.size())).str());
  }
  for (auto a : *attempts) {
    if (a.status != stage_status::running && a.status != stage_status::pending)
      continue;
    a.status = stage_status::failed;
    a.failure = code;
    a.error = why;
    if (auto it = own.attempts.find({a.job, a.attempt});
        it != own.attempts.end() && is_terminal(std::get<0>(it->second))) {
      std::tie(a.status, a.failure, a.error) = it->second;
    }
    a.finished_at = now;
    a.updated_at = now;
    a.epoch = run.epoch;
    event(a.job, a.attempt, event_level::error,
          "attempt " + std::to_string(a.attempt) + " " + code_name + ": " + why,
          meta().add("pid", a.pid).str());
    b.attempts.push_back(a);
    ++report.attempts_interrupted;
  }
  auto not_run = "not run: the run " + std::string(code == failure_code::lost ? "was lost"
                                                                              : "was interrupted");
  for (auto j : *jobs) {
    j.epoch = run.epoch;
    bool live = j.status == stage_status::running || j.status == stage_status::retrying;
    if (auto it = own.stages.find(j.job); own.ended && it != own.stages.end()
                                          && j.status != std::get<0>(it->second)
                                          && !is_terminal(j.status)) {
      std::tie(j.status, j.failure, j.error) = it->second;
      event(j.job, j.attempts, j.status == stage_status::succeeded ? event_level::info
                                                                   : event_level::error,
            to_string(j.status) + " (from the run's own metadata.json)");
      j.updated_at = now;
      b.jobs.push_back(j);
      continue;
    }
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
      event(j.job, j.attempts, event_level::error, "failed: " + code_name + ": " + why);
    } else if (!resume && j.status == stage_status::pending) {
      j.status = stage_status::skipped;
      j.error = not_run;
      event(j.job, 0, event_level::info, "skipped: " + not_run);
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
    run.owner = owner;
  } else if (own.ended) {
    run.status = own.status;
    run.failure = own.failure;
    run.reason = own.reason + " (the store's last writes were lost; settled from metadata.json)";
    run.finished_at = now;
    event("", 0, event_level::warn, "run " + to_string(run.status) + ": " + run.reason);
    if (run.status != run_status::succeeded)
      ++report.runs_failed;
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
  auto line = "run " + run.run_id
              + (resume      ? " resumed: " + why
                 : own.ended ? " " + to_string(run.status) + ": " + run.reason
                             : " failed: " + why);
  if (!killed.empty())
    line += "; killed " + std::to_string(killed.size()) + " leftover process(es)";
  report.messages.push_back(line);
  if (!resume) {
    resumable_run settled;
    settled.run = run;
    auto j = db.jobs(run.run_id);
    auto a = db.attempts(run.run_id);
    if (!j)
      return std::move(j.error());
    if (!a)
      return std::move(a.error());
    settled.jobs = std::move(*j);
    settled.attempts = std::move(*a);
    report.settled.push_back(std::move(settled));
  }
  return caf::none;
}

} // namespace

std::vector<std::string> kill_leftovers(const std::string& run_id,
                                        const std::vector<std::string>& cgroups) {
  std::vector<std::string> killed;
  std::set<int32_t> seen;
  auto kill_one = [&](int32_t pid) {
    if (pid <= 0 || pid == ::getpid() || !seen.insert(pid).second)
      return;
    auto comm = comm_of(pid);
    if (::kill(pid, SIGKILL) == 0)
      killed.push_back(std::to_string(pid) + " (" + comm + ")");
  };
  for (auto& cg : cgroups)
    for (auto pid : cgroup_jobs::members(cg))
      kill_one(pid);
  auto needle = "TROUPE_RUN_ID=" + run_id + '\0';
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (pid <= 0 || *end != '\0')
        continue;
      auto env = read_file("/proc/" + std::string(e->d_name) + "/environ");
      if (env.rfind(needle, 0) == 0 || env.find('\0' + needle) != std::string::npos)
        kill_one(static_cast<int32_t>(pid));
    }
    ::closedir(d);
  }
  for (auto& cg : cgroups)
    cgroup_jobs::remove_when_empty(cg);
  return killed;
}

namespace {

using resumable_fn = std::function<bool(const run_row&)>;

caf::expected<recovery_report> reconcile_runs(store& db, const std::string& host, int32_t pid,
                                              const resumable_fn& resumable, bool just_one,
                                              const std::string& taker);

} // namespace

caf::expected<recovery_report> reconcile(store& db, const std::string& host, int32_t pid,
                                         const std::string& resume_file) {
  // `troupe run` resumes one run: its own pipeline's, if one was interrupted.
  auto mine = [&](const run_row& r) { return !resume_file.empty() && r.pipeline_file == resume_file; };
  return reconcile_runs(db, host, pid, mine, true, {});
}

caf::expected<recovery_report> reconcile_as(store& db, const std::string& host, int32_t pid,
                                            const std::string& owner,
                                            const std::function<bool(const run_row&)>& resumable) {
  return reconcile_runs(db, host, pid, resumable, false, owner);
}

namespace {

caf::expected<recovery_report> reconcile_runs(store& db, const std::string& host, int32_t pid,
                                              const resumable_fn& resumable, bool just_one,
                                              const std::string& taker) {
  recovery_report report;
  auto runs = db.unfinished_runs();
  if (!runs)
    return std::move(runs.error());
  auto now = caf::make_timestamp();
  for (auto& run : *runs) {
    if (run.host == host && run.pid == pid)
      continue;  // ours
    auto owner = owner_liveness(run, host, now);
    if (!owner.lost)
      continue;
    if (!taker.empty()) {
      // One of the processes reconciling this store settles it.
      auto won = db.take_over_run(run.run_id, run.owner, run.epoch, taker, now);
      if (!won)
        return std::move(won.error());
      if (!*won)
        continue;
      // (settle_run writes at the next epoch: the one just taken.)
    }
    auto why = owner.why + "; the run was " + to_string(run.status);
    bool resume = (!just_one || !report.resume) && resumable && resumable(run)
                  && run.status == run_status::running;
    auto run_id = run.run_id;
    if (auto err = settle_run(db, run, failure_code::interrupted, why, resume, run.host == host,
                              pid, owner_token(host), report))
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
      report.resumes.push_back(r);
      if (!report.resume)
        report.resume = std::move(r);
    }
  }
  return report;
}

} // namespace

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
  if (auto err = settle_run(db, run, failure_code::lost, why, false, run.host == this_host(),
                            run.pid, run.owner, report))
    return err;
  return report;
}

caf::error settle_metadata(const resumable_run& settled) {
  const auto& run = settled.run;
  if (run.run_dir.empty())
    return caf::none;  // artifacts: store: the store is the whole record
  // The space its dead owner held back for the final record: not needed now.
  ::unlink((run.run_dir + "/.troupe-reserve").c_str());
  auto path = run.run_dir + "/metadata.json";
  nlohmann::json doc;
  if (::access(path.c_str(), F_OK) != 0) {
    // The owner died after the store had the run and before its folder had a
    // metadata.json (no stage had started: the first one waits for both).
    // The folder gets the record the store has.
    if (::access(run.run_dir.c_str(), F_OK) != 0)
      return caf::none;  // no folder either: nothing to write into
    doc = {{"run_id", run.run_id},
           {"pipeline", run.pipeline},
           {"run_dir", run.run_dir},
           {"started_at", iso8601(run.created_at)},
           {"pid", run.pid},
           {"host", {{"hostname", run.host}}},
           {"options", {{"pipeline_file", run.pipeline_file}}},
           {"written_by", "recovery, from the store (the run's own metadata.json was never written)"},
           {"stages", nlohmann::json::array()}};
    for (auto& j : settled.jobs)
      doc["stages"].push_back({{"name", j.job}, {"attempts", nlohmann::json::array()}});
  } else {
    try {
      doc = nlohmann::json::parse(read_file(path));
    } catch (const std::exception& e) {
      return caf::make_error(errc::os_error, path + ": not JSON (" + e.what() + ")");
    }
  }
  if (!doc.is_object())
    return caf::make_error(errc::os_error, path + ": not a JSON object");
  auto code_json = [](failure_code c) {
    return c == failure_code::none ? nlohmann::json(nullptr) : nlohmann::json(to_string(c));
  };
  auto text_json = [](const std::string& s) {
    return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s);
  };
  auto parsed = parse_run_status(doc.value("status", std::string{}));
  if (!parsed || !is_terminal(*parsed)) {
    doc["status"] = to_string(run.status);
    doc["failure_code"] = code_json(run.failure);
    doc["reason"] = run.reason;
    doc["finished_at"] = iso8601(run.finished_at ? *run.finished_at : caf::make_timestamp());
  }
  // Every stage and attempt exactly as the store has it.
  if (doc.contains("stages") && doc["stages"].is_array()) {
    for (auto& stage : doc["stages"]) {
      auto name = stage.value("name", std::string{});
      for (auto& j : settled.jobs) {
        if (j.job != name)
          continue;
        stage["status"] = to_string(j.status);
        stage["failure_code"] = code_json(j.failure);
        stage["error"] = text_json(j.error);
      }
      if (!stage.contains("attempts") || !stage["attempts"].is_array())
        continue;
      for (auto& a : settled.attempts) {
        if (a.job != name)
          continue;
        nlohmann::json* found = nullptr;
        for (auto& att : stage["attempts"])
          if (att.value("attempt", 0) == a.attempt)
            found = &att;
        if (found == nullptr) {
          // The store heard of this attempt; the dead owner never wrote it here.
          stage["attempts"].push_back(
            {{"attempt", a.attempt},
             {"strategy", a.strategy},
             {"started_at", a.started_at ? nlohmann::json(iso8601(*a.started_at)) : nullptr},
             {"pid", a.pid == 0 ? nlohmann::json(nullptr) : nlohmann::json(a.pid)},
             {"stdout_log", running_order::attempt_log(name, a.attempt, "stdout.log")},
             {"stderr_log", running_order::attempt_log(name, a.attempt, "stderr.log")}});
          found = &stage["attempts"].back();
        }
        auto& att = *found;
        att["status"] = to_string(a.status);
        att["failure_code"] = code_json(a.failure);
        att["error"] = text_json(a.error);
        if (a.finished_at)
          att["finished_at"] = iso8601(*a.finished_at);
        if (a.finished_at && stage["finished_at"].is_null())
          stage["finished_at"] = iso8601(*a.finished_at);
      }
    }
  }
  return write_atomically(path, doc.dump(2) + "\n");
}

} // namespace troupe
