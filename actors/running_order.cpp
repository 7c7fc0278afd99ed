#include "actors/running_order.hpp"

#include "messages/json.hpp"

#include <algorithm>
#include <chrono>

namespace troupe {

std::string within_run(std::string text, const std::string& run_dir) {
  if (run_dir.empty())
    return text;
  auto prefix = run_dir + "/";
  for (auto at = text.find(prefix); at != std::string::npos; at = text.find(prefix, at))
    text.erase(at, prefix.size());
  return text;
}

namespace {

int64_t ms_of(caf::timespan d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

std::string seconds_text(caf::timespan d) {
  auto ms = ms_of(d);
  if (ms % 1000 == 0)
    return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

} // namespace

running_order::running_order(run_record record, std::vector<retry_policy> retry,
                             supervision_spec supervision, std::function<double()> jitter)
  : record_(std::move(record)),
    retry_(std::move(retry)),
    budget_(supervision),
    jitter_(std::move(jitter)) {
  retry_.resize(record_.stages.size());
  next_strategy_.resize(record_.stages.size());
  handed_out_.resize(record_.stages.size());
  held_.resize(record_.stages.size());
  for (size_t i = 0; i < record_.stages.size(); ++i)
    index_.emplace(record_.stages[i].name, i);
  base_.resize(record_.stages.size());
  for (size_t i = 0; i < record_.stages.size(); ++i) {
    auto& s = record_.stages[i];
    s.max_attempts = retry_[i].spec().max_attempts;
    // A stage that runs again (resumed after an interruption, or rerun):
    // its attempts go on numbering, with a whole retry budget of its own,
    // and its times are this try's.
    if (s.status == stage_status::pending && !s.attempts.empty()) {
      base_[i] = static_cast<int32_t>(s.attempts.size());
      s.max_attempts += base_[i];
      s.earlier_attempts = base_[i];
      s.started_at = caf::none;
      s.finished_at = caf::none;
    }
  }
}

std::string running_order::attempt_log(const std::string& stage, int32_t n, const char* suffix) {
  if (n <= 1)
    return "logs/" + log_stem(stage) + "." + suffix;
  return "logs/" + log_stem(stage) + ".attempt-" + std::to_string(n) + "." + suffix;
}

// -- the journal -------------------------------------------------------------

run_row run_row_of(const run_record& rec, caf::timestamp now) {
  run_row r;
  r.run_id = rec.run_id;
  r.pipeline = rec.pipeline;
  r.pipeline_file = rec.options.pipeline_file;
  r.run_dir = rec.run_dir;
  r.status = rec.status;
  r.failure = rec.failure;
  r.reason = rec.reason;
  r.host = rec.host.hostname;
  r.pid = rec.pid;
  r.owner = rec.owner;
  r.epoch = rec.epoch;
  r.created_at = rec.started_at;
  if (rec.status != run_status::queued)
    r.started_at = rec.started_at;
  r.finished_at = rec.finished_at;
  r.updated_at = now;
  r.params = params_json(rec.params);
  r.pipeline_sha256 = rec.options.pipeline_sha256;
  r.launched_by = rec.options.launched_by;
  if (!rec.probes.empty())
    r.state = probe_state_json(rec.probes);
  return r;
}

void running_order::journal_run(caf::timestamp now) {
  journal_.runs.push_back(run_row_of(record_, now));
}

void running_order::journal_job(size_t i, caf::timestamp now) {
  const auto& s = record_.stages.at(i);
  job_row j;
  j.run_id = record_.run_id;
  j.job = s.name;
  j.position = static_cast<int32_t>(i);
  j.status = s.status;
  j.attempts = static_cast<int32_t>(s.attempts.size());
  j.failure = s.failure;
  j.error = s.error;
  j.updated_at = now;
  j.epoch = record_.epoch;
  journal_.jobs.push_back(std::move(j));
}

void running_order::journal_attempt(size_t i, caf::timestamp now) {
  const auto& s = record_.stages.at(i);
  const auto& a = s.attempts.back();
  attempt_row r;
  r.run_id = record_.run_id;
  r.job = s.name;
  r.attempt = a.attempt;
  r.status = a.status;
  r.strategy = a.strategy;
  r.failure = a.failure;
  r.error = a.error;
  r.exit_code = a.exit_code;
  r.signal = a.signal;
  if (a.http && a.http->status > 0)
    r.http_status = a.http->status;
  r.pid = a.pid;
  r.started_at = a.started_at;
  r.finished_at = a.finished_at;
  r.duration_ms = ms_of(a.duration);
  r.stats = attempt_stats(a);
  r.updated_at = now;
  r.cgroup = a.cgroup;
  r.epoch = record_.epoch;
  journal_.attempts.push_back(std::move(r));
}

void running_order::restore(run_record& rec, const std::vector<job_row>& jobs,
                            const std::vector<attempt_row>& attempts) {
  for (auto& s : rec.stages) {
    for (auto& a : attempts) {
      if (a.job != s.name)
        continue;
      attempt_record ar;
      ar.attempt = a.attempt;
      ar.strategy = a.strategy;
      ar.status = a.status;
      ar.failure = a.failure;
      ar.error = a.error;
      ar.exit_code = a.exit_code;
      ar.signal = a.signal;
      ar.started_at = a.started_at;
      ar.finished_at = a.finished_at;
      ar.duration = std::chrono::milliseconds(a.duration_ms);
      ar.pid = a.pid;
      ar.cgroup = a.cgroup;
      ar.stdout_log = attempt_log(s.name, a.attempt, "stdout.log");
      ar.stderr_log = attempt_log(s.name, a.attempt, "stderr.log");
      s.attempts.push_back(std::move(ar));
    }
    for (auto& j : jobs) {
      if (j.job != s.name)
        continue;
      // retrying: interrupted, runs again (pending to running_order); the rest stays.
      s.status = j.status == stage_status::retrying ? stage_status::pending : j.status;
      s.failure = j.status == stage_status::retrying ? failure_code::none : j.failure;
      s.error = j.status == stage_status::retrying ? std::string{} : j.error;
      if (!s.attempts.empty()) {
        const auto& last = s.attempts.back();
        s.started_at = s.attempts.front().started_at;
        s.finished_at = last.finished_at;
        s.exit_code = last.exit_code;
        s.pid = last.pid;
        s.stdout_log = last.stdout_log;
        s.stderr_log = last.stderr_log;
      }
    }
  }
}

void running_order::event(caf::timestamp now, size_t i, int32_t attempt, event_level level,
                          std::string message, std::string meta_json) {
  event_row e;
  e.ts = now;
  e.run_id = record_.run_id;
  e.job = record_.stages.at(i).name;
  e.attempt = attempt;
  e.level = level;
  e.message = std::move(message);
  e.meta = std::move(meta_json);
  journal_.events.push_back(std::move(e));
}

void running_order::run_event(caf::timestamp now, event_level level, std::string message,
                              std::string meta_json) {
  event_row e;
  e.ts = now;
  e.run_id = record_.run_id;
  e.level = level;
  e.message = std::move(message);
  e.meta = std::move(meta_json);
  journal_.events.push_back(std::move(e));
}

store_batch running_order::take_journal() {
  return std::exchange(journal_, store_batch{});
}

// -- decisions ---------------------------------------------------------------

void running_order::start(caf::timestamp now) {
  bool resumed = record_.status == run_status::running;  // see runtime/recovery.hpp
  record_.status = run_status::running;
  journal_run(now);
  for (size_t i = 0; i < record_.stages.size(); ++i)
    if (record_.stages[i].status == stage_status::pending && record_.stages[i].attempts.empty())
      journal_job(i, now);
  run_event(now, event_level::info, resumed ? "run continues (resumed)" : "run started",
            meta()
              .add("pipeline", record_.pipeline)
              .add("pipeline_file", record_.options.pipeline_file)
              .add("host", record_.host.hostname)
              .add("pid", record_.pid)
              .add("run_dir", record_.run_dir)
              .add("stages", static_cast<int64_t>(record_.stages.size()))
              .str());
}

void running_order::skip(size_t i, const std::string& why, caf::timestamp now) {
  auto& s = touch(i);
  s.status = stage_status::skipped;
  s.error = why;
  journal_job(i, now);
  event(now, i, 0, event_level::info, "skipped: " + s.error);
}

std::vector<size_t> running_order::ready(caf::timestamp now) {
  std::vector<size_t> out;
  if (stopped_ || cancelled_ || record_failed_ != failure_code::none)
    return out;
  auto& stages = record_.stages;
  // Skipping a stage can settle its dependents: go round until nothing changes.
  for (bool changed = true; changed;) {
    changed = false;
    out.clear();
    for (size_t i = 0; i < stages.size(); ++i) {
      auto& s = stages[i];
      if (s.status != stage_status::pending || handed_out_[i])
        continue;
      bool waits = false;
      const stage_record* blocked = nullptr;
      for (auto& name : s.depends_on) {
        auto it = index_.find(name);
        if (it == index_.end())
          continue;  // (validated: cannot happen)
        const auto& d = stages[it->second];
        if (d.status == stage_status::succeeded
            || (d.status == stage_status::skipped && !d.enabled))
          continue;
        if (d.status == stage_status::failed || d.status == stage_status::timed_out
            || d.status == stage_status::cancelled || d.status == stage_status::skipped) {
          blocked = &d;
          break;
        }
        waits = true;
      }
      if (blocked != nullptr) {
        // on_failure: continue (fail-fast stopped the run already).
        skip(i, "not run: depends on '" + blocked->name + "', which "
                  + (blocked->status == stage_status::skipped ? std::string("was skipped")
                                                              : to_string(blocked->status)),
             now);
        changed = true;
      } else if (!waits && !s.enabled) {
        skip(i, "optional stage not enabled (use --enable " + s.name + ")", now);
        changed = true;
      } else if (!waits) {
        out.push_back(i);
      }
    }
  }
  auto limit = static_cast<size_t>(std::max(1, record_.options.max_parallel));
  auto busy = in_flight();
  out.resize(busy >= limit ? 0 : std::min(out.size(), limit - busy));
  for (auto i : out)
    handed_out_[i] = true;
  return out;
}


std::optional<size_t> running_order::next(caf::timestamp now) {
  auto limit = record_.options.max_parallel;
  record_.options.max_parallel = static_cast<int32_t>(in_flight()) + 1;
  auto r = ready(now);
  record_.options.max_parallel = limit;
  if (r.empty())
    return std::nullopt;
  return r.front();
}

size_t running_order::in_flight() const {
  size_t n = 0;
  for (size_t i = 0; i < record_.stages.size(); ++i) {
    auto st = record_.stages[i].status;
    if (st == stage_status::running || st == stage_status::retrying
        || (st == stage_status::pending && handed_out_[i]))
      ++n;
  }
  return n;
}

void running_order::release(size_t i) {
  handed_out_.at(i) = false;
}

stage_record& running_order::touch(size_t i) {
  auto& s = record_.stages.at(i);
  ++s.revision;
  return s;
}

attempt_record& running_order::current(size_t i) {
  return touch(i).attempts.back();
}

const attempt_record& running_order::attempt_started(size_t i, caf::timestamp now) {
  auto& s = touch(i);
  handed_out_.at(i) = false;
  attempt_record a;
  a.attempt = static_cast<int32_t>(s.attempts.size()) + 1;
  a.strategy = next_strategy_[i].empty() ? s.strategy : next_strategy_[i];
  a.status = stage_status::running;
  a.started_at = now;
  if (a.strategy != "noop") {  // a noop has no process, hence no logs
    a.stdout_log = attempt_log(s.name, a.attempt, "stdout.log");
    a.stderr_log = attempt_log(s.name, a.attempt, "stderr.log");
  }
  if (a.strategy != "exec" && a.strategy != "noop")
    a.body_log = attempt_log(s.name, a.attempt, "body");
  s.status = stage_status::running;
  if (!s.started_at)
    s.started_at = now;
  s.pid = 0;
  s.exit_code = caf::none;
  s.signal = caf::none;
  s.failure = failure_code::none;
  s.error.clear();
  s.stdout_log = a.stdout_log;
  s.stderr_log = a.stderr_log;
  s.attempts.push_back(std::move(a));
  journal_job(i, now);
  journal_attempt(i, now);
  const auto& cur = s.attempts.back();
  // A rerun's attempts count within the rerun's own budget, and say so.
  auto which = base_[i] == 0 ? "attempt " + std::to_string(cur.attempt) + " of "
                                 + std::to_string(s.max_attempts)
                             : "rerun attempt " + std::to_string(cur.attempt - base_[i]) + " of "
                                 + std::to_string(s.max_attempts - base_[i]) + ", attempt "
                                 + std::to_string(cur.attempt) + " overall,";
  event(now, i, cur.attempt, event_level::info, which + " started (" + cur.strategy + ")",
        meta().add("strategy", cur.strategy).add("command", s.command).str());
  return cur;
}

void running_order::stage_spawned(size_t i, int32_t pid, const std::string& cgroup,
                                  caf::timestamp now) {
  auto& s = touch(i);
  s.pid = pid;
  current(i).pid = pid;
  current(i).cgroup = cgroup;
  if (held_.at(i)) {
    // It waited on the node: it starts now, not when it was handed over.
    held_[i] = false;
    if (s.started_at && *s.started_at == current(i).started_at)
      s.started_at = now;
    current(i).started_at = now;
    journal_job(i, now);
  }
  journal_attempt(i, now);
}

void running_order::stage_note(size_t i, const std::string& what, caf::timestamp now) {
  event(now, i, current(i).attempt, event_level::warn, what);
}

void running_order::stage_waiting(size_t i, const std::string& why, caf::timestamp now) {
  held_.at(i) = true;
  event(now, i, current(i).attempt, event_level::info, why);
}

void running_order::stage_before(size_t i, snapshot snap) {
  touch(i).resources.before = std::move(snap);
}

void running_order::stage_sample(size_t i, const snapshot& snap) {
  auto& r = touch(i).resources;
  ++r.samples;
  if (snap.process) {
    r.peak_rss_bytes = std::max(r.peak_rss_bytes, snap.process->rss_bytes);
    r.cpu_seconds = std::max(r.cpu_seconds, snap.process->cpu_seconds);
    auto& a = current(i);
    a.peak_rss_bytes = std::max(a.peak_rss_bytes, snap.process->rss_bytes);
  }
}

void running_order::stage_after(size_t i, snapshot snap) {
  touch(i).resources.after = std::move(snap);
}

attempt_decision running_order::attempt_finished(size_t i, const job_result& result,
                                                 caf::timestamp now) {
  auto r = result;
  if (record_failed_ != failure_code::none && r.status == stage_status::cancelled) {
    // Stopped by troupe because the run can no longer be recorded.
    r.status = stage_status::failed;
    r.failure = record_failed_;
    r.error = "stopped: " + record_failure_;
  }
  auto& s = record_.stages.at(i);
  if (s.status != stage_status::running || s.attempts.empty())
    return {};
  touch(i);
  auto& a = s.attempts.back();
  a.status = r.status;
  a.failure = r.failure;
  a.error = r.error;
  a.exit_code = r.exit_code;
  a.signal = r.signal;
  if (r.pid != 0)
    a.pid = r.pid;
  a.finished_at = r.finished_at;
  a.duration = r.duration;
  a.strategy = r.strategy.empty() ? a.strategy : r.strategy;
  a.http = r.http;
  a.cpu_seconds = r.cpu_seconds;
  a.peak_rss_bytes = std::max(a.peak_rss_bytes, r.max_rss_bytes);
  if (!r.gpu.lease_id.empty() || r.gpu.fallback || !r.gpu.reason.empty())
    a.lease = r.gpu;
  // The stage shows its latest attempt.
  s.status = r.status;
  s.failure = r.failure;
  s.exit_code = r.exit_code;
  s.signal = r.signal;
  s.error = r.error;
  if (r.pid != 0)
    s.pid = r.pid;
  s.finished_at = r.finished_at;
  s.duration = s.started_at ? r.finished_at - *s.started_at : r.duration;
  s.leftovers_killed += r.leftovers_killed;
  auto& res = s.resources;
  res.peak_rss_bytes = std::max(res.peak_rss_bytes, r.max_rss_bytes);
  res.cpu_seconds = std::max(res.cpu_seconds, r.cpu_seconds);
  auto m = meta().add("strategy", a.strategy).add("duration_ms", ms_of(a.duration));
  if (a.exit_code)
    m.add("exit_code", *a.exit_code);
  if (a.signal)
    m.add("signal", *a.signal);
  if (a.http && a.http->status > 0)
    m.add("http_status", a.http->status);
  if (r.status == stage_status::succeeded) {
    journal_attempt(i, now);
    journal_job(i, now);
    event(now, i, a.attempt, event_level::info,
          "attempt " + std::to_string(a.attempt) + " succeeded", m.str());
    return {};
  }
  m.add("failure", to_string(a.failure));
  // "attempt 2 failed: exit_nonzero: exit code 3"; a word said once
  // ("attempt 1 cancelled; leader ended by signal 15", not "cancelled:
  // cancelled: cancelled; ...").
  auto status = to_string(a.status), failure = to_string(a.failure);
  auto detail = a.error;
  if (detail.rfind(failure, 0) == 0 && detail.size() > failure.size()
      && (detail[failure.size()] == ';' || detail[failure.size()] == ':'))
    detail = detail.substr(failure.size());
  else if (detail == failure)
    detail.clear();
  else if (!detail.empty())
    detail = ": " + detail;
  auto text = "attempt " + std::to_string(a.attempt) + " " + status
              + (failure == status ? "" : ": " + failure) + detail;
  const auto& policy = retry_[i];
  // The stage failed for good. Fail-fast stops the run: no new stage starts
  // (those running finish). Under on_failure: continue only its dependents
  // are skipped, by ready(); a cancel, a record that cannot be written and
  // an exhausted budget stop the run either way.
  auto give_up = [&](event_level level, std::string why, bool stop_anyway = false) {
    journal_attempt(i, now);
    journal_job(i, now);
    event(now, i, a.attempt, event_level::error, text, m.str());
    event(now, i, a.attempt, level, std::move(why),
          meta().add("attempts", a.attempt).add("max_attempts", s.max_attempts).str());
    if (stop_anyway || !record_.options.continue_on_failure || cancelled_
        || record_failed_ != failure_code::none) {
      stopped_ = true;
      skip_pending(record_failed_ != failure_code::none
                     ? "not run: troupe cannot record the run"
                     : "not run: stage '" + s.name + "' " + to_string(s.status),
                   now);
    }
    return attempt_decision{attempt_decision::stop, {}, {}};
  };
  if (r.status == stage_status::cancelled || cancelled_)
    return give_up(event_level::info, "cancelled: no retry");
  if (record_failed_ != failure_code::none)
    return give_up(event_level::error, "no retry: troupe cannot record the run");
  bool escalate = r.failure == failure_code::blocked && a.strategy == "http"
                  && a.attempt < s.max_attempts;
  auto tries = a.attempt - base_[i];  // this try's attempts (a rerun starts again)
  if (!escalate && !policy.retries(r.failure, tries)) {
    if (a.attempt >= s.max_attempts)
      return give_up(event_level::error, "giving up after " + std::to_string(tries)
                                           + " attempt(s) (retry.max_attempts "
                                           + std::to_string(policy.spec().max_attempts) + ")");
    return give_up(event_level::error, "not retried: " + to_string(r.failure)
                                         + " is not in retry.on");
  }
  if (!budget_.admit(now)) {
    const auto& sup = budget_.spec();
    record_.failure = r.failure;
    record_.reason = "supervision budget exhausted: more than "
                     + std::to_string(sup.max_retries) + " retries within "
                     + seconds_text(sup.within);
    auto d = give_up(event_level::error, "not retried: " + record_.reason, true);
    run_event(now, event_level::error, record_.reason,
              meta()
                .add("max_retries", sup.max_retries)
                .add("within_ms", ms_of(sup.within))
                .add("stage", s.name)
                .str());
    return d;
  }
  auto delay = policy.delay(tries, jitter_ ? jitter_() : 0.0, r.retry_after);
  a.retry_delay = delay;
  if (escalate)
    next_strategy_[i] = "browser";  // and it stays one: never back to http
  std::string strategy = next_strategy_[i];
  s.status = stage_status::retrying;
  journal_attempt(i, now);
  journal_job(i, now);
  event(now, i, a.attempt, event_level::warn, text, m.str());
  auto rm = meta()
              .add("delay_ms", ms_of(delay))
              .add("reason", to_string(r.failure))
              .add("next_attempt", a.attempt + 1)
              .add("max_attempts", s.max_attempts);
  if (r.retry_after.count() > 0)
    rm.add("retry_after_ms", ms_of(r.retry_after));
  if (!strategy.empty())
    rm.add("strategy", strategy);
  if (escalate) {
    event(now, i, a.attempt, event_level::warn,
          "escalating http -> browser after blocked (HTTP "
            + std::to_string(a.http ? a.http->status : 0) + ")",
          meta().add("from", "http").add("to", "browser").str());
  }
  event(now, i, a.attempt, event_level::info,
        "retry scheduled in " + seconds_text(delay) + " (attempt " + std::to_string(a.attempt + 1)
          + " of " + std::to_string(s.max_attempts) + ") after " + to_string(r.failure),
        rm.str());
  return {attempt_decision::retry, delay, strategy};
}

void running_order::cancel(caf::timestamp now, const std::string& reason) {
  if (cancelled_)
    return;
  cancelled_ = true;
  if (!reason.empty() && record_.reason.empty())
    record_.reason = reason;
  run_event(now, event_level::warn, reason.empty() ? "cancel requested" : reason);
  for (size_t i = 0; i < record_.stages.size(); ++i) {
    auto& s = record_.stages[i];
    if (s.status == stage_status::retrying) {
      touch(i);
      s.status = stage_status::cancelled;
      s.failure = failure_code::cancelled;
      s.error = "cancelled while waiting to retry";
      journal_job(i, now);
      event(now, i, static_cast<int32_t>(s.attempts.size()), event_level::warn, s.error);
    }
  }
}

void running_order::record_failed(failure_code code, const std::string& why,
                                  caf::timestamp now) {
  if (record_failed_ != failure_code::none)
    return;
  record_failed_ = code;
  record_failure_ = within_run(why, record_.run_dir);
  stopped_ = true;
  run_event(now, event_level::error,
            "cannot record the run: " + to_string(code) + ": " + record_failure_,
            meta().add("failure", to_string(code)).str());
  for (size_t i = 0; i < record_.stages.size(); ++i) {
    auto& s = record_.stages[i];
    if (s.status == stage_status::retrying) {
      touch(i);
      s.status = stage_status::failed;
      s.failure = code;
      s.error = "not retried: troupe cannot record the run: " + why;
      journal_job(i, now);
      event(now, i, static_cast<int32_t>(s.attempts.size()), event_level::error, s.error);
    }
  }
}

void running_order::skip_pending(const std::string& why, caf::timestamp now) {
  for (size_t i = 0; i < record_.stages.size(); ++i) {
    auto& s = record_.stages[i];
    if (s.status == stage_status::pending) {
      ++s.revision;
      s.status = stage_status::skipped;
      if (s.error.empty())
        s.error = s.enabled ? why : "optional stage not enabled (use --enable " + s.name + ")";
      journal_job(i, now);
      event(now, i, 0, event_level::info, "skipped: " + s.error);
    }
  }
}

void running_order::probe_recorded(probe_record p, caf::timestamp now) {
  auto m = meta().add("probe", p.name).add("phase", p.phase).add("status", p.status);
  if (p.exit_code)
    m.add("exit_code", *p.exit_code);
  auto text = "probe '" + p.name + "' (" + p.phase + "): " + p.status
              + (p.error.empty() ? "" : ": " + p.error);
  auto level = p.status == "ok" ? event_level::info : event_level::warn;
  record_.probes.push_back(std::move(p));
  journal_run(now);
  run_event(now, level, std::move(text), m.str());
}

void running_order::finish(caf::timestamp now) {
  if (record_failed_ != failure_code::none)
    skip_pending("not run: troupe cannot record the run", now);
  else if (cancelled_)
    skip_pending("run cancelled", now);
  else
    skip_pending("not run", now);
  record_.finished_at = now;
  auto any = [&](stage_status st) {
    return std::any_of(record_.stages.begin(), record_.stages.end(),
                       [st](const stage_record& s) { return s.status == st; });
  };
  auto first = [&](stage_status st) -> const stage_record* {
    for (auto& s : record_.stages)
      if (s.status == st)
        return &s;
    return nullptr;
  };
  if (record_failed_ != failure_code::none) {
    record_.status = run_status::failed;
    record_.failure = record_failed_;
    record_.reason = to_string(record_failed_) + ": " + record_failure_;
  } else if (cancelled_ || any(stage_status::cancelled)) {
    record_.status = run_status::cancelled;
    record_.failure = failure_code::cancelled;
    if (record_.reason.empty())
      record_.reason = "cancelled";
  } else if (auto* t = first(stage_status::timed_out)) {
    record_.status = run_status::timed_out;
    record_.failure = failure_code::timeout;
    if (record_.reason.empty())
      record_.reason = "stage '" + t->name + "' timed out";
  } else if (auto* f = first(stage_status::failed)) {
    record_.status = run_status::failed;
    if (record_.failure == failure_code::none)
      record_.failure = f->failure;
    if (record_.reason.empty())
      record_.reason = "stage '" + f->name + "' failed: " + to_string(f->failure);
  } else {
    record_.status = run_status::succeeded;
  }
  journal_run(now);
  run_event(now, record_.status == run_status::succeeded ? event_level::info : event_level::error,
            "run " + to_string(record_.status)
              + (record_.reason.empty() ? "" : ": " + record_.reason),
            meta()
              .add("status", to_string(record_.status))
              .add("failure", to_string(record_.failure))
              .add("wall_ms", ms_of(now - record_.started_at))
              .str());
}

int running_order::exit_code() const {
  if (record_failed_ != failure_code::none)
    return exit_code::internal;
  switch (record_.status) {
    case run_status::succeeded: return exit_code::ok;
    case run_status::failed: return exit_code::stage_failed;
    case run_status::timed_out: return exit_code::stage_timed_out;
    case run_status::cancelled: return exit_code::cancelled;
    case run_status::queued:
    case run_status::running: break;
  }
  return exit_code::internal;
}

} // namespace troupe
