// running_order: the decisions of one run, with no actors in it. It owns the
// run record and answers: which stage runs next, what a stage's result means
// for the run (fail-fast), what cancellation does, and what `troupe run`
// exits with. The run_supervisor translates messages into calls on it.
#pragma once

#include "messages/job_worker.hpp"
#include "messages/run.hpp"

#include <caf/timestamp.hpp>

#include <optional>

namespace troupe {

/// Exit codes of `troupe run` (docs/pipelines.md).
namespace exit_code {
constexpr int ok = 0;
constexpr int stage_failed = 1;
constexpr int usage = 2;
constexpr int stage_timed_out = 3;
constexpr int internal = 4;
constexpr int cancelled = 130;
} // namespace exit_code

class running_order {
public:
  explicit running_order(run_record record);

  const run_record& record() const {
    return record_;
  }

  /// The next stage to execute, after marking disabled stages `skipped`;
  /// nothing when the run is over (all done, failed or cancelled).
  std::optional<size_t> next();

  void stage_started(size_t i, caf::timestamp now);
  void stage_spawned(size_t i, int32_t pid);
  void stage_before(size_t i, snapshot s);
  void stage_sample(size_t i, const snapshot& s);
  void stage_after(size_t i, snapshot s);

  /// Applies a job's result; a stage that did not succeed stops the run:
  /// every later pending stage becomes `skipped`. Ignored unless stage `i`
  /// is running (a late duplicate, say).
  void stage_finished(size_t i, const job_result& r);

  /// Asks the run to stop: no further stage starts.
  void cancel();
  bool cancelled() const {
    return cancelled_;
  }

  /// Ends the run: derives its status, skips what never ran.
  void finish(caf::timestamp now);

  /// What `troupe run` exits with, from the run's status.
  int exit_code() const;

private:
  void skip_pending(const std::string& why);
  /// Stage `i`, its revision bumped: every change goes through here.
  stage_record& touch(size_t i);

  run_record record_;
  size_t cursor_ = 0;
  bool stopped_ = false;    // a stage failed
  bool cancelled_ = false;
};

} // namespace troupe
