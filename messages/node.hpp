// node: where attempts run. A run_supervisor hands each attempt to a node
// and names it afterwards by its job_key; the node spawns the attempt's
// job_worker (or http_worker), watches it, and answers for it. The local
// node is a node: a remote one (the cluster) takes the same messages.
#pragma once

#include "messages/gpu_broker.hpp"
#include "messages/job_worker.hpp"
#include "messages/type_ids.hpp"

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <string>
#include <tuple>

namespace troupe {

/// One attempt of one stage of one run: how every actor names a job.
struct job_key {
  std::string run_id;
  std::string stage;
  int32_t attempt = 0;

  friend bool operator<(const job_key& a, const job_key& b) {
    return std::tie(a.run_id, a.stage, a.attempt) < std::tie(b.run_id, b.stage, b.attempt);
  }
  friend bool operator==(const job_key& a, const job_key& b) {
    return a.run_id == b.run_id && a.stage == b.stage && a.attempt == b.attempt;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_key& x) {
  return f(caf::meta::type_name("troupe::job_key"), x.run_id, x.stage, x.attempt);
}

inline job_key key_of(const job_spec& s) {
  return {s.run_id, s.name, s.attempt};
}

/// interface node {
///   (start_atom, job_spec) -> job_result   // run this attempt here, once per key:
///        // its own job_worker (exec) or http_worker (http, browser); the
///        // requester hears (spawned_atom, stage, pid, cgroup) when the
///        // leader runs, and gets the result; a worker that dies without one
///        // has its tree killed and answers failure `lost`. A requester that
///        // dies has its attempts stopped as if cancelled.
///   (cancel_atom, job_key) -> void         // stop that attempt (unknown keys: ignored)
///   (kill_atom, job_key, std::string) -> void  // SIGKILL its tree (limits.memory)
///   (spawned_atom, std::string, int32_t, std::string) -> void
///        // from its own workers (job_listener), passed on to the requester
///   (capacity_atom) -> int32_t             // the node's CPU slots (0: no limit)
///   (snapshot_atom, sample_request) -> snapshot      // the node's sampler, now
///   (watch_atom, sample_request, timespan, sample_sink_actor) -> void
///   (unwatch_atom, sample_request) -> void
///        // periodic samples of an attempt's tree, sent to the sink by the
///        // node's sampler (a run asks its node; the node samples its host)
///   (lease_atom, gpu_grant), (limit_atom, gpu_use) -> void
///        // from its GPU broker (gpu_listener): a queued lease granted or
///        // expired; a lease's processes over what it booked
///   internal: (renew_atom, job_key) renews a running attempt's lease;
///             (timeout_atom, job_key) ends a wait for a GPU at the stage's timeout
/// }
using node_actor = caf::typed_actor<
  caf::replies_to<start_atom, job_spec>::with<job_result>,
  caf::replies_to<capacity_atom>::with<int32_t>,
  caf::reacts_to<cancel_atom, job_key>,
  caf::reacts_to<kill_atom, job_key, std::string>,
  caf::reacts_to<spawned_atom, std::string, int32_t, std::string>,
  caf::replies_to<snapshot_atom, sample_request>::with<snapshot>,
  caf::reacts_to<watch_atom, sample_request, caf::timespan, sample_sink_actor>,
  caf::reacts_to<unwatch_atom, sample_request>,
  caf::reacts_to<lease_atom, gpu_grant>,
  caf::reacts_to<limit_atom, gpu_use>,
  caf::reacts_to<renew_atom, job_key>,
  caf::reacts_to<timeout_atom, job_key>>;

} // namespace troupe
