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

#include <functional>
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
  std::vector<resumable_run> settled; // the runs now failed, as the store has them
  std::optional<resumable_run> resume;  // the first of `resumes`
  std::vector<resumable_run> resumes;   // every run settled for resuming
};

/// `resume_file`: the absolute pipeline file of this run when its pipeline
/// has `resume: true`, else empty. `host`, `pid`: this process.
caf::expected<recovery_report> reconcile(store& db, const std::string& host, int32_t pid,
                                         const std::string& resume_file);

/// The same, where several processes may reconcile one store at once (the
/// coordinators): each lost run is first taken over with store::take_over_run
/// by `owner`, and only the one process that wins settles it.
/// Runs for which `resumable` is true (and that were running) are settled
/// for resuming, as `troupe run` resumes its own, and listed in `resumes`.
caf::expected<recovery_report> reconcile_as(store& db, const std::string& host, int32_t pid,
                                            const std::string& owner,
                                            const std::function<bool(const run_row&)>& resumable);

/// The parent's half of supervision: the run_supervisor of `run_id` ended
/// without finishing the run. Its unfinished attempts, jobs and the run fail
/// with code `lost` and the reason `why`; leftover stage processes are
/// killed. A run already terminal is left as it is (an empty report).
caf::expected<recovery_report> fail_lost_run(store& db, const std::string& run_id,
                                             const std::string& why);

/// Brings the run folder's metadata.json in line with the store's rows of a
/// run settled by recovery, when the run's own process could not: the run's
/// status, failure_code, reason and finished_at, and each stage's and
/// attempt's status, failure_code, error and finished_at. A terminal run
/// status already there stands (the run's own last word).
caf::error settle_metadata(const resumable_run& settled);

/// Kills what a dead owner left of `run_id` on this host: each job cgroup
/// in `cgroups`, then every process whose environment carries
/// TROUPE_RUN_ID=`run_id` (stages inherit it; without cgroups this is how a
/// background child whose leader exited is found). "pid (comm)" of each.
std::vector<std::string> kill_leftovers(const std::string& run_id,
                                        const std::vector<std::string>& cgroups);

} // namespace troupe
