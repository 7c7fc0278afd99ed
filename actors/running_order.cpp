#include "actors/running_order.hpp"

#include <algorithm>

namespace troupe {

running_order::running_order(run_record record) : record_(std::move(record)) {
}

std::optional<size_t> running_order::next() {
  if (stopped_ || cancelled_)
    return std::nullopt;
  while (cursor_ < record_.stages.size()) {
    auto& s = record_.stages[cursor_];
    if (s.status == stage_status::pending && !s.enabled) {
      s.status = stage_status::skipped;
      s.error = "optional stage not enabled (use --enable " + s.name + ")";
      ++s.revision;
      ++cursor_;
      continue;
    }
    if (s.status == stage_status::pending)
      return cursor_++;
    ++cursor_;
  }
  return std::nullopt;
}

stage_record& running_order::touch(size_t i) {
  auto& s = record_.stages.at(i);
  ++s.revision;
  return s;
}

void running_order::stage_started(size_t i, caf::timestamp now) {
  auto& s = touch(i);
  s.status = stage_status::running;
  s.started_at = now;
}

void running_order::stage_spawned(size_t i, int32_t pid) {
  touch(i).pid = pid;
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
  }
}

void running_order::stage_after(size_t i, snapshot snap) {
  touch(i).resources.after = std::move(snap);
}

void running_order::stage_finished(size_t i, const job_result& r) {
  auto& s = record_.stages.at(i);
  if (s.status != stage_status::running)
    return;
  touch(i);
  s.status = r.status;
  s.failure = r.failure;
  s.exit_code = r.exit_code;
  s.signal = r.signal;
  s.error = r.error;
  if (r.pid != 0)
    s.pid = r.pid;
  s.finished_at = r.finished_at;
  s.duration = r.duration;
  s.leftovers_killed = r.leftovers_killed;
  auto& res = s.resources;
  res.peak_rss_bytes = std::max(res.peak_rss_bytes, r.max_rss_bytes);
  res.cpu_seconds = std::max(res.cpu_seconds, r.cpu_seconds);
  if (s.status == stage_status::succeeded)
    return;
  stopped_ = true;
  skip_pending(s.status == stage_status::cancelled
                 ? "run cancelled"
                 : "not run: stage '" + s.name + "' " + to_string(s.status));
}

void running_order::cancel() {
  cancelled_ = true;
}

void running_order::skip_pending(const std::string& why) {
  for (auto& s : record_.stages) {
    if (s.status == stage_status::pending) {
      ++s.revision;
      s.status = stage_status::skipped;
      if (s.error.empty())
        s.error = s.enabled ? why : "optional stage not enabled (use --enable " + s.name + ")";
    }
  }
}

void running_order::finish(caf::timestamp now) {
  if (cancelled_)
    skip_pending("run cancelled");
  else
    skip_pending("not run");
  record_.finished_at = now;
  auto any = [&](stage_status st) {
    return std::any_of(record_.stages.begin(), record_.stages.end(),
                       [st](const stage_record& s) { return s.status == st; });
  };
  if (cancelled_ || any(stage_status::cancelled))
    record_.status = run_status::cancelled;
  else if (any(stage_status::timed_out))
    record_.status = run_status::timed_out;
  else if (any(stage_status::failed))
    record_.status = run_status::failed;
  else
    record_.status = run_status::succeeded;
}

int running_order::exit_code() const {
  switch (record_.status) {
    case run_status::succeeded: return exit_code::ok;
    case run_status::failed: return exit_code::stage_failed;
    case run_status::timed_out: return exit_code::stage_timed_out;
    case run_status::cancelled: return exit_code::cancelled;
    case run_status::running: break;
  }
  return exit_code::internal;
}

} // namespace troupe
