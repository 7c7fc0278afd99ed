// running_order: the decisions of one run, with no actors in it. It owns the
// run record and answers: which stage runs next, what an attempt's result
// means (retry after a backoff, escalate http -> browser, give up, stop the
// run: fail-fast), what cancellation does, and what `troupe run` exits with.
// Every change also becomes rows and events for the store (take_journal()).
// The run_supervisor translates messages into calls on it; time and jitter
// come in as arguments, so its schedule is exact under test.
#pragma once

#include "actors/retry_policy.hpp"
#include "messages/job_worker.hpp"
#include "messages/run.hpp"
#include "messages/store.hpp"

#include <caf/timestamp.hpp>

#include <functional>
#include <map>
#include <optional>

namespace troupe {

/// `text` with `run_dir` + "/" taken out of every path in it: errors that
/// records and clients see name files relative to the run
/// ("logs/build.stdout.log: fsync: ..."), never the server's absolute paths.
std::string within_run(std::string text, const std::string& run_dir);

/// Exit codes of `troupe run` (docs/pipelines.md).
namespace exit_code {
constexpr int ok = 0;
constexpr int stage_failed = 1;
constexpr int usage = 2;
constexpr int stage_timed_out = 3;
constexpr int internal = 4;
constexpr int detached = 5;  // the CLI stopped following (Ctrl-C); the run goes on
constexpr int cancelled = 130;
} // namespace exit_code

/// What to do after an attempt ended.
struct attempt_decision {
  // next: the stage succeeded; stop: it failed for good (the run stops but
  // for `on_failure: continue`); retry: after `delay`
  enum kind_t { next, retry, stop } kind = next;
  caf::timespan delay{0};  // for retry
  std::string strategy;    // for retry: the next attempt's strategy
};

/// The store's row of a run as `rec` has it now (the scheduler's queued row,
/// the coordinator's, and the journal's all come from here).
run_row run_row_of(const run_record& rec, caf::timestamp now);

class running_order {
public:
  /// `retry` has one policy per stage, in order; `jitter` draws from [-1, 1].
  explicit running_order(run_record record, std::vector<retry_policy> retry = {},
                         supervision_spec supervision = {},
                         std::function<double()> jitter = nullptr);

  const run_record& record() const {
    return record_;
  }

  /// The run starts (queued -> running).
  void start(caf::timestamp now);

  /// The stages that may start now, in file order, each handed out once:
  /// pending, everything they depend on succeeded (or is an optional stage
  /// not enabled), and no more than options.max_parallel in flight. Marks
  /// disabled optional stages `skipped` as they come up, and under
  /// `on_failure: continue` the dependents of a stage that failed (with the
  /// reason). Empty when the run is stopping (a failure under fail-fast, a
  /// cancel, a record that cannot be written) or nothing is ready yet.
  std::vector<size_t> ready(caf::timestamp now);
  /// ready(), one stage at most.
  std::optional<size_t> next(caf::timestamp now);
  /// Stages running, waiting for a retry, or handed out and not yet started.
  size_t in_flight() const;
  /// A stage handed out by ready() does not start after all (the run is
  /// stopping); it stays pending, and finish() skips it.
  void release(size_t i);

  /// A new attempt of stage `i` starts (pending or retrying -> running);
  /// returns it. `strategy` empty: the stage's configured one (or the one a
  /// retry decided).
  const attempt_record& attempt_started(size_t i, caf::timestamp now);

  void stage_spawned(size_t i, int32_t pid, const std::string& cgroup, caf::timestamp now);
  /// The node holds stage `i`'s attempt until its resources fit: an event
  /// says why ("waiting for the node: 2 of 2 CPU slots in use, it needs 1").
  void stage_waiting(size_t i, const std::string& why, caf::timestamp now);
  /// The node warns about stage `i`'s attempt (a GPU fallback, GPU over-use):
  /// an event at warn.
  void stage_note(size_t i, const std::string& what, caf::timestamp now);
  void stage_before(size_t i, snapshot s);
  void stage_sample(size_t i, const snapshot& s);
  void stage_after(size_t i, snapshot s);

  /// Applies an attempt's result and decides: the stage succeeded (next),
  /// a retry after a delay (the stage is `retrying`), or the stage failed
  /// for good and the run stops (fail-fast: later stages are skipped).
  /// A result for a stage that is not running is ignored (next).
  attempt_decision attempt_finished(size_t i, const job_result& r, caf::timestamp now);

  /// Asks the run to stop: no further attempt starts; a stage waiting for
  /// its retry is cancelled.
  /// Stops the run: `reason` (e.g. "cancelled by schedule sch-1 (overlap:
  /// replace)") becomes the run's reason; "" says only "cancelled".
  void cancel(caf::timestamp now, const std::string& reason = "");
  bool cancelled() const {
    return cancelled_;
  }
  /// No new stage starts: fail-fast after a failure, a cancel, or a record
  /// that cannot be written.
  bool stopping() const {
    return stopped_ || cancelled_ || record_failed_ != failure_code::none;
  }

  /// troupe cannot make the run's record durable (`code`:
  /// artifact_write_failed or store_write_failed; `why` names the path and
  /// the error): no further attempt starts, the running one is to be
  /// stopped by the caller and is recorded as failed with `code`, and the
  /// run fails with `code` and exits 4. The first call decides.
  void record_failed(failure_code code, const std::string& why, caf::timestamp now);
  bool record_failed() const {
    return record_failed_ != failure_code::none;
  }

  /// A state probe ran (or could not): kept in the record (state_before,
  /// state_after, delta), with an event and the run's row for the store.
  /// Never changes how the run ends.
  void probe_recorded(probe_record p, caf::timestamp now);

  /// Ends the run: derives its status, skips what never ran.
  void finish(caf::timestamp now);

  /// What `troupe run` exits with, from the run's status.
  int exit_code() const;

  /// The rows and events for the store since the last call.
  store_batch take_journal();

  /// Log file names of attempt `n` of a stage, relative to the run folder:
  /// attempt 1 keeps `logs/<stage>.stdout.log`; later ones add `.attempt-<n>`.
  static std::string attempt_log(const std::string& stage, int32_t n, const char* suffix);

  /// A resumed run (runtime/recovery.hpp): `rec`'s stages get their jobs and
  /// attempts as the store has them, the inverse of the journal. The stage
  /// that was interrupted (its job `retrying`) becomes pending and runs again
  /// with its next attempt; the others keep what they had.
  static void restore(run_record& rec, const std::vector<job_row>& jobs,
                      const std::vector<attempt_row>& attempts);

private:
  void skip_pending(const std::string& why, caf::timestamp now);
  void skip(size_t i, const std::string& why, caf::timestamp now);
  /// Stage `i`, its revision bumped: every change goes through here.
  stage_record& touch(size_t i);
  attempt_record& current(size_t i);

  // The journal: rows and events for the store.
  void journal_run(caf::timestamp now);
  void journal_job(size_t i, caf::timestamp now);
  void journal_attempt(size_t i, caf::timestamp now);
  void event(caf::timestamp now, size_t i, int32_t attempt, event_level level,
             std::string message, std::string meta = "{}");
  void run_event(caf::timestamp now, event_level level, std::string message,
                 std::string meta = "{}");

  run_record record_;
  std::vector<retry_policy> retry_;
  supervision_budget budget_;
  std::function<double()> jitter_;
  std::vector<std::string> next_strategy_;  // per stage: decided by a retry
  store_batch journal_;
  std::vector<bool> handed_out_;  // by ready(), not yet started
  std::vector<bool> held_;        // its attempt waits for room on the node (stage_waiting)
  std::vector<int32_t> base_;     // attempts a stage had before this try (resumed, rerun)
  std::map<std::string, size_t> index_;  // stage name -> position
  bool stopped_ = false;  // a stage failed for good (fail-fast), or the budget ran out
  bool cancelled_ = false;
  failure_code record_failed_ = failure_code::none;
  std::string record_failure_;
};

} // namespace troupe
