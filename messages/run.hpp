// A run as recorded in metadata.json: the run, its host and options, and one
// record per stage in pipeline order. The run_supervisor owns the live copy;
// the artifact_writer receives a copy at every transition.
#pragma once

#include "messages/job_worker.hpp"
#include "messages/resource_sampler.hpp"
#include "messages/status.hpp"
#include "messages/type_ids.hpp"

#include <caf/meta/type_name.hpp>
#include <caf/optional.hpp>
#include <caf/timestamp.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace troupe {

/// The machine a run ran on (hostname, kernel, hwloc topology, memory).
struct host_info {
  std::string hostname;
  std::string kernel;
  std::string cpu_model;
  int32_t cores = 0;       // physical cores (hwloc)
  int32_t pus = 0;         // hardware threads (hwloc)
  int32_t numa_nodes = 0;  // (hwloc)
  int64_t mem_total_bytes = 0;
  int32_t gpus = 0;        // NVML devices seen at start; 0 without NVML
  std::string process_tracking;  // how stage trees are tracked (cgroup v2 or process group)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, host_info& x) {
  return f(caf::meta::type_name("troupe::host_info"), x.hostname, x.kernel,
           x.cpu_model, x.cores, x.pus, x.numa_nodes, x.mem_total_bytes,
           x.gpus, x.process_tracking);
}

/// The options `troupe run` was given, as recorded.
struct run_options {
  std::string pipeline_file;  // absolute
  std::string output_dir;
  std::vector<std::string> enabled;
  caf::timespan sample_interval{0};  // 0: no periodic samples
  caf::timespan grace{0};
  int32_t max_parallel = 1;          // stages of the run at once
  bool continue_on_failure = false;  // on_failure: continue (else stop: fail-fast)
  std::string pipeline_sha256;       // the pipeline file's hash when the run was made
  std::string launched_by;           // manual (troupe run), api, schedule or trigger
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_options& x) {
  return f(caf::meta::type_name("troupe::run_options"), x.pipeline_file,
           x.output_dir, x.enabled, x.sample_interval, x.grace, x.max_parallel,
           x.continue_on_failure, x.pipeline_sha256, x.launched_by);
}

struct stage_resources {
  caf::optional<snapshot> before;
  caf::optional<snapshot> after;
  int64_t peak_rss_bytes = 0;  // max of sampled tree RSS and rusage max RSS
  double cpu_seconds = 0;      // max of rusage and the last sampled tree CPU
  int32_t samples = 0;         // periodic samples taken
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_resources& x) {
  return f(caf::meta::type_name("troupe::stage_resources"), x.before, x.after,
           x.peak_rss_bytes, x.cpu_seconds, x.samples);
}

/// One attempt of a stage, as recorded in metadata.json (and as a row of
/// the store's attempts table).
struct attempt_record {
  int32_t attempt = 1;
  std::string strategy;  // exec | http | browser
  stage_status status = stage_status::pending;
  failure_code failure = failure_code::none;
  std::string error;
  caf::optional<int32_t> exit_code;
  caf::optional<int32_t> signal;
  caf::optional<caf::timestamp> started_at;
  caf::optional<caf::timestamp> finished_at;
  caf::timespan duration{0};
  int32_t pid = 0;
  std::string stdout_log;  // relative to the run folder
  std::string stderr_log;
  std::string body_log;    // http and browser: the body received
  caf::optional<http_stats> http;
  double cpu_seconds = 0;
  int64_t peak_rss_bytes = 0;
  caf::timespan retry_delay{0};  // the wait scheduled after this attempt; 0: none
  std::string cgroup;            // the job cgroup it ran in; "" when none
  caf::optional<gpu_attempt> lease;  // for a stage that asked for GPUs
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, attempt_record& x) {
  return f(caf::meta::type_name("troupe::attempt_record"), x.attempt, x.strategy, x.status,
           x.failure, x.error, x.exit_code, x.signal, x.started_at, x.finished_at, x.duration,
           x.pid, x.stdout_log, x.stderr_log, x.body_log, x.http, x.cpu_seconds,
           x.peak_rss_bytes, x.retry_delay, x.cgroup, x.lease);
}

/// One run of a state probe (pipeline `probes:`), before the first stage or
/// after the last: what it printed when that was one JSON object of numbers
/// and strings. A probe never fails its run; a failure is recorded here.
struct probe_record {
  std::string name;
  std::string phase;   // before | after
  std::string status;  // ok | failed (exit, signal, timeout, spawn) | invalid (not one JSON object)
  std::string error;   // for failed and invalid
  std::string output;  // ok: the object, compact JSON
  caf::optional<int32_t> exit_code;
  caf::timespan duration{0};
  std::string stdout_log;  // relative to the run folder
  std::string stderr_log;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, probe_record& x) {
  return f(caf::meta::type_name("troupe::probe_record"), x.name, x.phase, x.status, x.error,
           x.output, x.exit_code, x.duration, x.stdout_log, x.stderr_log);
}

/// The stem of a stage's log files: its name, with each character outside
/// A-Z a-z 0-9 . _ - replaced (`train[shard=1,model=small]` ->
/// `train.shard-1.model-small`). Plain stage names are their own stem.
inline std::string log_stem(const std::string& stage_name) {
  std::string out;
  out.reserve(stage_name.size());
  for (char ch : stage_name) {
    bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
                 || ch == '.' || ch == '_' || ch == '-';
    if (plain)
      out += ch;
    else if (ch == '[' || ch == ',')
      out += '.';
    else if (ch == '=')
      out += '-';
    else if (ch != ']')
      out += '_';
  }
  return out;
}

struct stage_record {
  std::string name;
  std::string kind;     // exec
  std::string command;  // for people: the argv joined, or the shell line
  bool optional = false;
  bool enabled = true;
  std::vector<std::string> depends_on;  // every one must succeed first (pipeline.hpp)
  std::map<std::string, std::string> matrix;  // a matrix instance's values
  caf::timespan timeout{0};
  stage_status status = stage_status::pending;
  failure_code failure = failure_code::none;
  caf::optional<caf::timestamp> started_at;
  caf::optional<caf::timestamp> finished_at;
  caf::timespan duration{0};
  caf::optional<int32_t> exit_code;
  caf::optional<int32_t> signal;
  std::string error;
  int32_t pid = 0;
  int32_t leftovers_killed = 0;
  std::string stdout_log;  // relative to the run folder
  std::string stderr_log;
  stage_resources resources;
  std::string strategy = "exec";  // as configured: exec | auto | http | browser
  int64_t memory_limit = 0;       // limits.memory in bytes; 0: none
  int32_t max_attempts = 1;
  int32_t earlier_attempts = 0;  // attempts of earlier tries (a rerun or a resume numbers on)
  std::vector<attempt_record> attempts;
  uint32_t revision = 0;  // bumped at every change: lets the writer re-render only what changed
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_record& x) {
  return f(caf::meta::type_name("troupe::stage_record"), x.name, x.kind,
           x.command, x.optional, x.enabled, x.depends_on, x.matrix, x.timeout, x.status, x.failure,
           x.started_at, x.finished_at, x.duration, x.exit_code, x.signal,
           x.error, x.pid, x.leftovers_killed, x.stdout_log, x.stderr_log,
           x.resources, x.strategy, x.memory_limit, x.max_attempts, x.earlier_attempts, x.attempts,
           x.revision);
}

struct run_record {
  std::string run_id;
  std::string pipeline;  // the pipeline's name
  std::string run_dir;   // absolute
  run_status status = run_status::queued;
  failure_code failure = failure_code::none;  // why the run failed, when it did
  std::string reason;                         // the same for people
  int32_t pid = 0;                            // the troupe process driving it
  std::string owner;                          // and its owner token (host:pid:start-ticks)
  int64_t epoch = 1;                          // the epoch it writes the store at (fencing)
  caf::timestamp started_at;
  caf::optional<caf::timestamp> finished_at;
  host_info host;
  run_options options;
  std::map<std::string, std::string> params;  // the parameter values used (pipeline.hpp)
  std::vector<probe_record> probes;           // state probes, before then after
  std::vector<stage_record> stages;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_record& x) {
  return f(caf::meta::type_name("troupe::run_record"), x.run_id, x.pipeline,
           x.run_dir, x.status, x.failure, x.reason, x.pid, x.owner, x.epoch, x.started_at,
           x.finished_at,
           x.host, x.options, x.params, x.probes, x.stages);
}

/// What a run_supervisor tells its listener (the CLI's progress display).
struct progress_event {
  enum class kind_t : uint8_t { stage_started, stage_finished, run_finished };
  std::string run_id;  // several runs' events share a listener (the coordinator's)
  kind_t kind = kind_t::stage_started;
  int32_t index = 0;  // stage index; -1 for run_finished
  int32_t total = 0;  // stages in the pipeline
  stage_record stage; // for stage events
  run_status run = run_status::running;
  int32_t exit_code = 0;  // for run_finished: what `troupe run` exits with
  std::vector<stage_record> stages;  // for run_finished: every stage's final record
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, progress_event& x) {
  return f(caf::meta::type_name("troupe::progress_event"), x.run_id, x.kind, x.index,
           x.total, x.stage, x.run, x.exit_code, x.stages);
}

} // namespace troupe
