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
  std::vector<run_row> settled;       // the runs now failed, as written
  std::optional<resumable_run> resume;
};

/// `resume_file`: the absolute pipeline file of this run when its pipeline
/// has `resume: true`, else empty. `host`, `pid`: this process.
caf::expected<recovery_report> reconcile(store& db, const std::string& host, int32_t pid,
                                         const std::string& resume_file);

/// The parent's half of supervision: the run_supervisor of `run_id` ended
/// without finishing the run. Its unfinished attempts, jobs and the run fail
/// with code `lost` and the reason `why`; leftover stage processes are
/// killed. A run already terminal is left as it is (an empty report).
caf::expected<recovery_report> fail_lost_run(store& db, const std::string& run_id,
                                             const std::string& why);

/// Brings the run folder's metadata.json in line with `run` (failed as the
/// store now has it) when the run's own process could not: status,
/// failure_code, reason and finished_at. A terminal status already there
/// stands; stages keep what their last write said.
caf::error settle_metadata(const std::string& run_dir, const run_row& run);

/// True when `pid` is a live troupe process (not merely a live pid: pids are reused).
bool troupe_alive(int32_t pid);

} // namespace troupe
