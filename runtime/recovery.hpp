// Crash recovery at start-up: runs that a killed troupe process left
// `queued` or `running` are reconciled. Only runs of this host whose troupe
// process is gone are touched (a shared PostgreSQL may hold live runs of
// other processes). Each one either fails with code `interrupted`, or, when
// its pipeline says `resume: true` and it is the pipeline being run now, is
// resumed: its interrupted stage gets a new attempt, finished stages stay.
// Nothing already written is rewritten: rows only move forward through
// legal transitions, and every change is an event.
#pragma once

#include "adapters/store/store.hpp"

#include <optional>
#include <string>
#include <vector>

namespace troupe {

/// A run to continue, as the store has it.
struct resumable_run {
  run_row run;
  std::vector<job_row> jobs;
  std::vector<attempt_row> attempts;
};

struct recovery_report {
  int32_t runs_failed = 0;
  int32_t attempts_interrupted = 0;
  int32_t processes_killed = 0;  // stage processes the dead runner left behind
  std::vector<std::string> messages;  // one line per run, for people
  std::optional<resumable_run> resume;
};

/// `resume_file`: the absolute pipeline file of this run when its pipeline
/// has `resume: true`, else empty. `host`, `pid`: this process.
caf::expected<recovery_report> reconcile(store& db, const std::string& host, int32_t pid,
                                         const std::string& resume_file);

/// True when `pid` is a live troupe process (not merely a live pid: pids are reused).
bool troupe_alive(int32_t pid);

} // namespace troupe
