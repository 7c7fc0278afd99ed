// scheduler: the coordinator's heart, for now without its API. It takes
// launches, persists each run `queued` and starts it at once when the limits
// allow (run_queue decides), one run_supervisor per run, all sharing one
// node, sampler, io_pool and store_writer; a run that ends frees its slot
// and the next queued one starts in the same step (no polling).
#pragma once

#include "messages/run.hpp"
#include "messages/type_ids.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <memory>
#include <string>

namespace troupe {

struct run_plan;

/// A run to launch: its plan, made by make_run_plan (local only: a plan
/// holds a function), and its place in the queue.
struct launch_plan {
  std::shared_ptr<run_plan> plan;
  int32_t priority = 0;
};

/// interface scheduler {
///   (launch_atom, launch_plan) -> std::string run_id  // persisted queued; started
///                                                     // at once if the limits allow
///   (cancel_atom, std::string run_id) -> bool         // false: not queued or running here;
///                                                     // a queued run ends cancelled at once
///   (cancel_atom, std::string run_id, std::string reason) -> bool  // the same, and the
///                                                     // run's reason says why (who asked)
///   (stats_atom) -> (int32_t queued, int32_t running)
///   (limit_atom, std::string pipeline, int32_t max_running) -> void  // 0: none
///   (progress_event) -> void                          // from its run_supervisors
/// }
using scheduler_actor = caf::typed_actor<
  caf::replies_to<launch_atom, launch_plan>::with<std::string>,
  caf::replies_to<cancel_atom, std::string>::with<bool>,
  caf::replies_to<cancel_atom, std::string, std::string>::with<bool>,
  caf::replies_to<stats_atom>::with<int32_t, int32_t>,
  caf::reacts_to<limit_atom, std::string, int32_t>,
  caf::reacts_to<progress_event>>;

} // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::launch_plan)
