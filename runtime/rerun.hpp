// troupe rerun (and POST /api/runs/{id}/rerun): which stages of an ended run
// run again. The named stages and everything that depends on them get new
// attempts in the same run and folder; the stages that succeeded otherwise
// keep their results. Pure: the caller reopens the run in the store
// (store::reopen_run) and starts it like a resumed one.
#pragma once

#include "messages/store.hpp"
#include "runtime/pipeline.hpp"

#include <caf/expected.hpp>

#include <string>
#include <vector>

namespace troupe {

struct rerun_request {
  std::string from;            // --from STAGE (a stage, or a matrix stage as written); "" = --failed
  bool allow_changed = false;  // run although the pipeline file changed since the run
  std::string reason;          // why, for the event ("" = none given)
  std::string by;              // who asked (user@host, or the API's caller)
};

struct rerun_choice {
  std::vector<std::string> stages;  // in pipeline order
  event_row event;                  // the run's `rerun` event (its run_id, ts set by the caller)
};

/// Errors (errc::bad_input), each naming what is wrong: the run is not
/// ended; the pipeline file changed (sha256) without allow_changed; --from
/// names no stage; nothing failed. `p` is the pipeline as its file says now.
caf::expected<rerun_choice> choose_rerun(const pipeline_def& p, const run_row& run,
                                         const std::vector<job_row>& jobs,
                                         const rerun_request& req);

} // namespace troupe
