#include "messages/status.hpp"

#include <array>
#include <utility>

namespace troupe {

namespace {

constexpr std::array<std::pair<run_status, const char*>, 6> run_names{{
  {run_status::queued, "queued"},
  {run_status::running, "running"},
  {run_status::succeeded, "succeeded"},
  {run_status::failed, "failed"},
  {run_status::timed_out, "timed_out"},
  {run_status::cancelled, "cancelled"},
}};

constexpr std::array<std::pair<stage_status, const char*>, 8> stage_names{{
  {stage_status::pending, "pending"},
  {stage_status::running, "running"},
  {stage_status::succeeded, "succeeded"},
  {stage_status::failed, "failed"},
  {stage_status::timed_out, "timed_out"},
  {stage_status::skipped, "skipped"},
  {stage_status::cancelled, "cancelled"},
  {stage_status::retrying, "retrying"},
}};

constexpr std::array<std::pair<failure_code, const char*>, 20> failure_names{{
  {failure_code::none, "none"},
  {failure_code::exit_nonzero, "exit_nonzero"},
  {failure_code::signaled, "signaled"},
  {failure_code::oom, "oom"},
  {failure_code::timeout, "timeout"},
  {failure_code::spawn_failed, "spawn_failed"},
  {failure_code::cancelled, "cancelled"},
  {failure_code::lost, "lost"},
  {failure_code::worker_lost, "worker_lost"},
  {failure_code::gpu_unavailable, "gpu_unavailable"},
  {failure_code::gpu_oom, "gpu_oom"},
  {failure_code::blocked, "blocked"},
  {failure_code::rate_limited, "rate_limited"},
  {failure_code::bad_response, "bad_response"},
  {failure_code::network, "network"},
  {failure_code::browser_unavailable, "browser_unavailable"},
  {failure_code::interrupted, "interrupted"},
  {failure_code::artifact_write_failed, "artifact_write_failed"},
  {failure_code::store_write_failed, "store_write_failed"},
  {failure_code::unknown, "unknown"},
}};

template <class Table, class T>
std::string name_of(const Table& table, T x) {
  for (auto& [v, name] : table)
    if (v == x)
      return name;
  return "unknown";
}

template <class Table>
auto value_of(const Table& table, const std::string& s)
  -> std::optional<typename Table::value_type::first_type> {
  for (auto& [v, name] : table)
    if (s == name)
      return v;
  return std::nullopt;
}

} // namespace

std::string to_string(run_status x) {
  return name_of(run_names, x);
}

std::string to_string(stage_status x) {
  return name_of(stage_names, x);
}

std::string to_string(failure_code x) {
  return name_of(failure_names, x);
}

std::optional<run_status> parse_run_status(const std::string& s) {
  return value_of(run_names, s);
}

std::optional<stage_status> parse_stage_status(const std::string& s) {
  return value_of(stage_names, s);
}

std::optional<failure_code> parse_failure_code(const std::string& s) {
  return value_of(failure_names, s);
}

bool is_terminal(stage_status x) {
  return x != stage_status::pending && x != stage_status::running
         && x != stage_status::retrying;
}

bool is_terminal(run_status x) {
  return x != run_status::queued && x != run_status::running;
}

bool legal(run_status from, run_status to) {
  if (from == to)
    return true;
  switch (from) {
    case run_status::queued:
      return to == run_status::running || to == run_status::failed
             || to == run_status::cancelled;
    case run_status::running:
      return to != run_status::queued;
    default:
      return false;
  }
}

bool legal_job(stage_status from, stage_status to) {
  if (from == to)
    return true;
  using s = stage_status;
  switch (from) {
    case s::pending:
      return to == s::running || to == s::skipped || to == s::cancelled;
    case s::running:
      return to == s::succeeded || to == s::failed || to == s::timed_out
             || to == s::cancelled || to == s::retrying;
    case s::retrying:
      return to == s::running || to == s::failed || to == s::cancelled;
    default:
      return false;
  }
}

bool legal_attempt(stage_status from, stage_status to) {
  if (from == to)
    return true;
  using s = stage_status;
  switch (from) {
    case s::pending:
      return to == s::running || to == s::failed || to == s::cancelled;
    case s::running:
      return to == s::succeeded || to == s::failed || to == s::timed_out
             || to == s::cancelled;
    default:
      return false;
  }
}

} // namespace troupe
