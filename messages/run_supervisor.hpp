// run_supervisor: drives one run's stages in order, owns the run record,
// asks its node for before/after snapshots (the node owns the sampler), hands the record and trace
// lines to the artifact_writer, and decides fail-fast and cancellation.
#pragma once

#include "messages/job_worker.hpp"
#include "messages/resource_sampler.hpp"
#include "messages/run.hpp"
#include "messages/type_ids.hpp"

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

namespace troupe {

/// interface progress_listener {
///   (progress_event) -> void   // a stage started or ended, or the run ended
/// }
/// What `troupe run`'s display (and later the API's event stream) hears.
using progress_listener_actor = caf::typed_actor<caf::reacts_to<progress_event>>;

/// interface run_supervisor {
///   (start_atom) -> void           // run every stage; progress goes to the
///                                  // listener, ending with run_finished, after
///                                  // which the supervisor quits
///   (cancel_atom) -> void          // stop the running stage, record `cancelled`
///   (cancel_atom, std::string reason) -> void  // the same; the run's reason says why
///   (sample_atom, snapshot) -> void  // periodic samples (sample_sink)
///   (spawned_atom, std::string, int32_t, std::string) -> void  // a leader runs (job_listener)
///   (waiting_atom, std::string, std::string) -> void  // the node holds a stage back (job_listener)
///   (limit_atom, std::string, std::string) -> void    // the node warns about a stage (job_listener)
///   internal: (retry_atom, int32_t stage, int32_t attempt)  // a backoff ended
/// }
using run_supervisor_actor = caf::typed_actor<
  caf::reacts_to<start_atom>,
  caf::reacts_to<cancel_atom>,
  caf::reacts_to<cancel_atom, std::string>,
  caf::reacts_to<retry_atom, int32_t, int32_t>,
  caf::reacts_to<sample_atom, snapshot>,
  caf::reacts_to<spawned_atom, std::string, int32_t, std::string>,
  caf::reacts_to<waiting_atom, std::string, std::string>,
  caf::reacts_to<limit_atom, std::string, std::string>>;

} // namespace troupe
