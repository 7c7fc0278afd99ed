// The states of runs, jobs (stages) and attempts, the legal transitions
// between them, and how a job failed. The store refuses any transition that
// legal() does not allow; docs/pipelines.md documents the same tables.
//
// Run:      queued ──▶ running ──▶ succeeded | failed | timed_out | cancelled
//             └──────────────────▶ failed | cancelled  (never started)
//
// Job (one per stage; its attempts are rows of their own):
//
//   pending ──▶ running ──▶ succeeded | failed | timed_out | cancelled
//      │          │  ▲
//      │          ▼  │
//      │        retrying  (waiting for backoff) ──▶ failed | cancelled
//      └──────▶ skipped | cancelled
//
// Attempt:  pending ──▶ running ──▶ succeeded | failed | timed_out | cancelled
//             └───────▶ failed | cancelled  (could not start)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace troupe {

enum class run_status : uint8_t { queued, running, succeeded, failed, timed_out, cancelled };

/// A job's (stage's) state, and an attempt's (which never takes `retrying`
/// or `skipped`).
enum class stage_status : uint8_t {
  pending,
  running,
  succeeded,
  failed,
  timed_out,
  skipped,
  cancelled,
  retrying,
};

/// Why a job or attempt did not succeed; `none` when it did (or has not
/// ended). Whether a code is retried is the pipeline's `retry.on`.
enum class failure_code : uint8_t {
  none,
  exit_nonzero,         // the leader exited with a code other than 0
  signaled,             // the leader was killed by a signal troupe did not send
  oom,                  // killed for memory: the kernel OOM killer, or over limits.memory
  timeout,              // the stage (or HTTP request) outlived its timeout
  spawn_failed,         // the command could not be started (not found, not executable, bad cwd)
  cancelled,            // troupe was asked to stop (SIGINT/SIGTERM) while it ran
  lost,                 // the job_worker ended without reporting a result
  blocked,              // HTTP 401 or 403
  rate_limited,         // HTTP 429
  bad_response,         // another HTTP 4xx/5xx, or a status not in `expect`
  network,              // DNS, connect, reset, TLS; a page Chromium could not load
  browser_unavailable,  // strategy browser, but Chromium is not installed
  interrupted,          // the troupe process running it died (found at the next start)
  artifact_write_failed,  // troupe could not make metadata.json, the trace or a log durable
  store_write_failed,     // troupe could not write the run's rows to its store
  worker_lost,          // the attempt's job_worker died without a result (its tree is killed)
  gpu_unavailable,      // it asked for GPUs and got none (gpu_fallback: fail or wait)
  gpu_oom,              // its processes used more GPU memory than leased (gpu_memory_enforce: kill)
  unknown,              // none of the above
};

std::string to_string(run_status x);
std::string to_string(stage_status x);
std::string to_string(failure_code x);

std::optional<run_status> parse_run_status(const std::string& s);
std::optional<stage_status> parse_stage_status(const std::string& s);
std::optional<failure_code> parse_failure_code(const std::string& s);

/// True for states a job or attempt never leaves.
bool is_terminal(stage_status x);
bool is_terminal(run_status x);

/// The transition tables above. A state to itself is legal (a field update).
bool legal(run_status from, run_status to);
bool legal_job(stage_status from, stage_status to);
bool legal_attempt(stage_status from, stage_status to);

} // namespace troupe
