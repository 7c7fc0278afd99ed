// The states of a run and of its stages, and how a stage failed.
//
// Run:    running ──▶ succeeded | failed | timed_out | cancelled
//
// Stage:  pending ──▶ running ──▶ succeeded | failed | timed_out | cancelled
//            │
//            └──────▶ skipped   (optional and not enabled, or an earlier
//                                stage stopped the run: fail-fast)
#pragma once

#include <cstdint>
#include <string>

namespace troupe {

enum class run_status : uint8_t { running, succeeded, failed, timed_out, cancelled };

enum class stage_status : uint8_t {
  pending,
  running,
  succeeded,
  failed,
  timed_out,
  skipped,
  cancelled,
};

/// Why a stage did not succeed. `none` for succeeded, pending and skipped.
enum class failure_code : uint8_t {
  none,
  exit_nonzero,  // the leader exited with a code other than 0
  signaled,      // the leader was killed by a signal troupe did not send
  timeout,       // the stage outlived its timeout and was stopped
  spawn_failed,  // the command could not be started (not found, not executable, bad cwd)
  cancelled,     // troupe was asked to stop (SIGINT/SIGTERM) while it ran
  lost,          // the job_worker ended without reporting a result
};

std::string to_string(run_status x);
std::string to_string(stage_status x);
std::string to_string(failure_code x);

/// True for states a stage never leaves.
bool is_terminal(stage_status x);

} // namespace troupe
