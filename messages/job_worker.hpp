// job_worker: runs one job (one stage's process tree) on its node and
// reports a typed result. Spawned per job by the run_supervisor; it quits
// after replying.
//
// Lifecycle of the process tree it owns:
//
//   spawn ─(launch_failed)─▶ reply spawn_failed
//     │
//     └(launched)─▶ running ──(leader exits)──────────────▶ leftovers? ──▶ sync logs ──▶ reply
//                │                                      │ yes: SIGTERM group,
//                └─(timeout | cancel)─▶ SIGTERM group   │      SIGKILL after grace
//                                        └─ SIGKILL after grace
#pragma once

#include "messages/status.hpp"
#include "messages/type_ids.hpp"

#include <caf/meta/type_name.hpp>
#include <caf/optional.hpp>
#include <caf/replies_to.hpp>
#include <caf/timestamp.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace troupe {

/// An HTTP stage's request (strategy http, and the probe of strategy auto).
struct http_request {
  std::string url;  // http:// or https://
  std::string method = "GET";
  std::map<std::string, std::string> headers;
  std::string body;
  std::vector<int32_t> expect_status;  // empty: any 2xx
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_request& x) {
  return f(caf::meta::type_name("troupe::http_request"), x.url, x.method, x.headers, x.body,
           x.expect_status);
}

/// What one HTTP (or browser) attempt saw. Times in milliseconds from the
/// start of the request; -1 where a phase did not happen.
struct http_stats {
  int32_t status = 0;  // 0: no response (network error, browser)
  std::string content_type;
  int64_t content_length = 0;  // bytes of body received
  std::string final_url;       // after redirects
  std::string title;           // the page's <title>, if any
  int32_t redirects = 0;
  double dns_ms = -1;
  double connect_ms = -1;
  double tls_ms = -1;
  double first_byte_ms = -1;
  double total_ms = -1;
  std::string resolved_by;  // for strategy auto: why http or browser was chosen
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, http_stats& x) {
  return f(caf::meta::type_name("troupe::http_stats"), x.status, x.content_type,
           x.content_length, x.final_url, x.title, x.redirects, x.dns_ms, x.connect_ms,
           x.tls_ms, x.first_byte_ms, x.total_ms, x.resolved_by);
}

/// What an attempt needs of its node (a stage's `resources:`): the node
/// starts it only when it fits beside everything else running there.
struct resource_request {
  int32_t cpus = 1;              // CPU slots; 0: takes none (probes)
  int64_t memory_bytes = 0;      // 0: none asked for
  int32_t gpus = 0;              // whole GPUs
  int64_t gpu_memory_bytes = 0;  // a share of one GPU
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, resource_request& x) {
  return f(caf::meta::type_name("troupe::resource_request"), x.cpus, x.memory_bytes, x.gpus,
           x.gpu_memory_bytes);
}

/// An attempt's GPUs: the lease it ran under, or why it ran without one.
struct gpu_attempt {
  std::string lease_id;           // "" when none was granted
  std::vector<std::string> gpus;  // UUIDs
  int64_t memory_bytes = 0;       // booked per GPU
  bool fallback = false;          // ran on CPU (gpu_fallback: cpu) instead
  std::string reason;             // why it fell back, or was refused
  int64_t peak_bytes = -1;        // its processes' GPU memory, the most seen (-1: not measured)
  double gpu_seconds = 0;         // GPUs held × seconds
  bool over = false;              // its processes used more than booked
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_attempt& x) {
  return f(caf::meta::type_name("troupe::gpu_attempt"), x.lease_id, x.gpus, x.memory_bytes,
           x.fallback, x.reason, x.peak_bytes, x.gpu_seconds, x.over);
}

/// Everything a node needs to run one attempt of a stage.
struct job_spec {
  std::string run_id;
  std::string name;               // the stage name
  std::vector<std::string> argv;  // argv[0] is looked up in PATH if it has no '/'
  std::string cwd;                // absolute
  std::vector<std::string> env;   // the complete environment, "KEY=value"
  caf::timespan timeout{0};       // 0: none
  caf::timespan grace{0};         // SIGTERM -> SIGKILL
  std::string stdout_path;        // absolute; created or truncated
  std::string stderr_path;
  int32_t attempt = 1;
  std::string strategy = "exec";  // exec | http | browser | auto
  http_request http;              // for http, browser and auto
  std::string body_path;          // http and browser: where the body goes (absolute)
  int64_t memory_limit = 0;       // bytes; 0: none (limits.memory)
  resource_request resources;     // what it takes of the node while it runs
  std::string gpu_fallback = "fail";  // without its GPUs: fail | cpu | wait
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_spec& x) {
  return f(caf::meta::type_name("troupe::job_spec"), x.run_id, x.name, x.argv,
           x.cwd, x.env, x.timeout, x.grace, x.stdout_path, x.stderr_path, x.attempt,
           x.strategy, x.http, x.body_path, x.memory_limit, x.resources, x.gpu_fallback);
}

/// What the process adapter reports when a watched leader exits.
struct process_exit {
  int32_t pid = 0;
  int32_t wait_status = 0;  // as from wait4: WIFEXITED etc.
  double cpu_seconds = 0;   // rusage user + system (the program and its reaped children)
  // The stage's own peak: the job cgroup's memory.peak where the kernel has
  // it, else the program's ru_maxrss as troupe-exec saw it; 0: not known
  // (then only the sampled figures count). Never troupe's own accounting.
  int64_t max_rss_bytes = 0;
  int64_t oom_kills = -1;  // the job cgroup's memory.events oom_kill; -1: not known
  int64_t oom_events = -1; // memory.events oom (allocations refused at memory.max); -1: not known
  std::string stderr_tail; // last bytes of stderr, read only for a failed stage with limits.memory
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, process_exit& x) {
  return f(caf::meta::type_name("troupe::process_exit"), x.pid, x.wait_status,
           x.cpu_seconds, x.max_rss_bytes, x.oom_kills, x.oom_events, x.stderr_tail);
}

/// The outcome of one job. A failed stage is a normal result.
struct job_result {
  std::string name;
  stage_status status = stage_status::pending;
  failure_code failure = failure_code::none;
  caf::optional<int32_t> exit_code;
  caf::optional<int32_t> signal;
  std::string error;  // human text; empty on success
  int32_t pid = 0;
  caf::timestamp started_at;
  caf::timestamp finished_at;
  caf::timespan duration{0};  // monotonic
  double cpu_seconds = 0;
  int64_t max_rss_bytes = 0;
  int32_t leftovers_killed = 0;  // group members still alive after the leader exited
  std::string strategy = "exec";  // what ran: exec | http | browser
  caf::optional<http_stats> http;
  caf::timespan retry_after{0};   // from an HTTP Retry-After; 0: none
  std::string log_error;  // the stage's logs could not be made durable: why ("" when they were)
  gpu_attempt gpu;        // for a stage that asked for GPUs
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_result& x) {
  return f(caf::meta::type_name("troupe::job_result"), x.name, x.status,
           x.failure, x.exit_code, x.signal, x.error, x.pid, x.started_at,
           x.finished_at, x.duration, x.cpu_seconds, x.max_rss_bytes,
           x.leftovers_killed, x.strategy, x.http, x.retry_after, x.log_error, x.gpu);
}

/// Sets `key`=`value` in a job_spec's environment list, replacing an earlier value.
void set_env(std::vector<std::string>& env, const std::string& key, const std::string& value);

/// interface job_listener {
///   (spawned_atom, std::string stage, int32_t pid, std::string cgroup) -> void
///        // the leader runs; cgroup: its job cgroup on the node, or ""
///   (waiting_atom, std::string stage, std::string why) -> void
///        // the node holds the attempt until its resources fit (once per attempt)
///   (limit_atom, std::string stage, std::string what) -> void
///        // the node's warning about the attempt (a GPU fallback, GPU over-use)
/// }
using job_listener_actor =
  caf::typed_actor<caf::reacts_to<spawned_atom, std::string, int32_t, std::string>,
                   caf::reacts_to<waiting_atom, std::string, std::string>,
                   caf::reacts_to<limit_atom, std::string, std::string>>;

/// interface job_worker {
///   (start_atom, job_spec) -> job_result  // once; the worker quits after replying
///   (cancel_atom) -> void                 // stop the tree (SIGTERM, SIGKILL after grace)
///   (kill_atom, std::string why) -> void  // SIGKILL the tree now (over limits.memory);
///                                         // the result comes as usual
/// }
/// The only messages other actors send a job_worker (or an http_worker,
/// which has the same interface): what the process adapter's thread and the
/// worker's own timers send stays inside actors/job_worker.cpp, so that a
/// remote node's job_workers take the same three messages.
using job_worker_actor = caf::typed_actor<
  caf::replies_to<start_atom, job_spec>::with<job_result>,
  caf::reacts_to<cancel_atom>,
  caf::reacts_to<kill_atom, std::string>>;

} // namespace troupe
