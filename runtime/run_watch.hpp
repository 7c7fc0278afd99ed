// The parent's side of a run: `troupe run` (and, later, the coordinator's
// scheduler) waits for its run_supervisor on a thread of its own and sees it
// die. A run_supervisor that ends without reporting the run's end leaves the
// run unfinished; the parent then records it as failed with code `lost` and
// the reason, in the store and in metadata.json.
#pragma once

#include "messages/artifact_writer.hpp"
#include "messages/run.hpp"
#include "messages/run_supervisor.hpp"
#include "messages/store.hpp"
#include "runtime/recovery.hpp"

#include <caf/scoped_actor.hpp>

#include <functional>
#include <string>

namespace troupe {

struct run_outcome {
  bool finished = false;   // the supervisor reported run_finished
  int32_t exit_code = 0;   // what `troupe run` exits with, when finished
  caf::error died;         // otherwise: why the supervisor ended
};

/// Waits for `sup` to report the run's end (a progress_event run_finished)
/// or to die. Every progress_event goes to `on_event`; `tick` is called
/// every 250 ms. Blocks the calling thread: never call it from an actor.
run_outcome await_run(caf::scoped_actor& self, const run_supervisor_actor& sup,
                      const std::function<void(progress_event&)>& on_event,
                      const std::function<void()>& tick);

/// Where a lost run is to be recorded.
struct lost_run {
  std::string run_id;
  std::string run_dir;
  std::string store_url;  // empty: no database (--no-db)
  artifact_writer_actor writer;
  store_actor store;  // may be null
};

/// After `await_run` saw the supervisor die: waits until everything it sent
/// to the artifact and store writers is written, then fails the run as
/// `lost` with `why` through a connection of its own, kills what the run
/// left running, and settles metadata.json. Blocks the calling thread.
caf::expected<recovery_report> record_lost_run(caf::scoped_actor& self, const lost_run& run,
                                               const std::string& why);

} // namespace troupe
