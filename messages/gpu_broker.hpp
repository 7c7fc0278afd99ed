// gpu_broker: one per node, owned by the node. It knows the node's GPUs
// (NVML), grants leases on them (actors/gpu_lease_book.hpp decides), and
// verifies them against what NVML shows each lease's processes using.
#pragma once

#include "messages/resource_sampler.hpp"
#include "messages/type_ids.hpp"

#include <caf/meta/type_name.hpp>
#include <caf/optional.hpp>
#include <caf/replies_to.hpp>
#include <caf/timestamp.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

/// What the broker may grant (GET/POST /gpu/policy).
struct gpu_policy {
  bool safe_mode = true;              // every lease denied, with a note
  caf::timespan default_ttl = std::chrono::hours(1);  // 0: leases do not expire
  int64_t reserve_bytes = 0;          // per GPU, never booked by memory leases
  int32_t max_leases_per_holder = 0;  // 0: no limit
  caf::timespan release_grace = std::chrono::seconds(30);  // processes not seen gone
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_policy& x) {
  return f(caf::meta::type_name("troupe::gpu_policy"), x.safe_mode, x.default_ttl,
           x.reserve_bytes, x.max_leases_per_holder, x.release_grace);
}

/// What the broker counted (for /metrics).
struct gpu_broker_stats {
  int64_t granted = 0, denied = 0, expired = 0, overuse = 0;
  int64_t active = 0, queued = 0;
  std::vector<double> wait_seconds;  // request to grant of queued leases, since the last read
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_broker_stats& x) {
  return f(caf::meta::type_name("troupe::gpu_broker_stats"), x.granted, x.denied, x.expired,
           x.overuse, x.active, x.queued, x.wait_seconds);
}

/// A lease asked of the broker.
struct gpu_ask {
  std::string holder;          // "RUN/STAGE#ATTEMPT", or a service's name
  int32_t gpus = 0;            // whole GPUs, or
  int64_t memory_bytes = 0;    // a share of one
  int64_t ttl_ms = -1;         // -1: the policy's default; 0: no expiry
  int32_t priority = 0;
  bool wait = false;           // queue when nothing fits now (else denied)
  int32_t pid = 0;             // its process tree's leader, when known (verification)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_ask& x) {
  return f(caf::meta::type_name("troupe::gpu_ask"), x.holder, x.gpus, x.memory_bytes, x.ttl_ms,
           x.priority, x.wait, x.pid);
}

/// A lease as the broker tells it (granted, queued, denied, or its state).
struct gpu_grant {
  std::string outcome;             // granted | queued | denied | active | releasing | expired
  std::string lease_id;
  std::string holder;
  std::vector<std::string> gpus;   // UUIDs
  std::vector<int32_t> indices;    // the same GPUs' NVML indices (display only)
  int64_t memory_bytes = 0;        // booked per GPU
  caf::optional<caf::timestamp> expires_at;
  std::string reason;              // denied / queued: why
  int32_t priority = 0;
  caf::optional<caf::timestamp> granted_at;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_grant& x) {
  return f(caf::meta::type_name("troupe::gpu_grant"), x.outcome, x.lease_id, x.holder, x.gpus,
           x.indices, x.memory_bytes, x.expires_at, x.reason, x.priority, x.granted_at);
}

/// What a lease's processes used, as the broker verified it.
struct gpu_use {
  std::string lease_id;
  int64_t used_bytes = 0;       // now, summed over its processes and GPUs
  int64_t peak_bytes = 0;       // the most seen
  double gpu_seconds = 0;       // GPUs held × seconds held
  bool over = false;            // used more than booked
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_use& x) {
  return f(caf::meta::type_name("troupe::gpu_use"), x.lease_id, x.used_bytes, x.peak_bytes,
           x.gpu_seconds, x.over);
}

/// The node's GPUs, or why it has none.
struct gpu_lease_list {
  std::vector<gpu_grant> leases;  // outcome: queued | active | releasing
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_lease_list& x) {
  return f(caf::meta::type_name("troupe::gpu_lease_list"), x.leases);
}

struct gpu_inventory {
  bool available = false;
  std::string reason;          // when not available: what NVML said
  std::string driver_version;
  bool safe_mode = true;
  std::vector<gpu_figures> gpus;
  std::vector<std::string> held_elsewhere;  // "UUID: process N (...)": another broker's
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_inventory& x) {
  return f(caf::meta::type_name("troupe::gpu_inventory"), x.available, x.reason,
           x.driver_version, x.safe_mode, x.gpus, x.held_elsewhere);
}

/// interface gpu_listener {   // the requester of a lease (the node)
///   (lease_atom, gpu_grant) -> void   // a queued lease was granted, or one expired
///   (limit_atom, gpu_use) -> void     // a lease's processes use more than it booked
/// }
using gpu_listener_actor =
  caf::typed_actor<caf::reacts_to<lease_atom, gpu_grant>, caf::reacts_to<limit_atom, gpu_use>>;
/// Something the broker did beyond a lease's row (see gpu_event_row).
struct gpu_event {
  int64_t id = 0;            // increasing; the store's where there is one
  caf::timestamp at;
  std::string kind;          // policy | overuse | expired | freed_by_grace | held_elsewhere
  std::string lease_id;
  std::string holder;
  std::string message;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_event& x) {
  return f(caf::meta::type_name("troupe::gpu_event"), x.id, x.at, x.kind, x.lease_id, x.holder,
           x.message);
}

struct gpu_event_list {
  std::vector<gpu_event> events;  // oldest first
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_event_list& x) {
  return f(caf::meta::type_name("troupe::gpu_event_list"), x.events);
}

/// interface gpu_broker {
///   (lease_atom, gpu_ask) -> gpu_grant          // granted, queued or denied
///   (renew_atom, std::string lease_id) -> gpu_grant  // denied: unknown, expired
///   (release_atom, std::string lease_id) -> gpu_use  // its use; the booking is
///        // freed once NVML shows its processes gone (or after the grace)
///   (attach_atom, std::string lease_id, int32_t pid) -> void
///        // the lease's leader runs: its process tree is what is verified
///   (snapshot_atom) -> gpu_inventory            // the inventory now
///   (leases_atom) -> gpu_lease_list             // every lease not yet freed
///   (policy_atom) -> gpu_policy
///   (policy_atom, gpu_policy, std::string who) -> std::string
///        // "" applied (and an event naming who), else why not
///   (events_atom, int64_t after) -> gpu_event_list  // the events since `after`
///   (stats_atom) -> gpu_broker_stats
/// The broker tells a lease's requester, unasked:
///   (lease_atom, gpu_grant)   a queued lease was granted, or one expired
///   (limit_atom, gpu_use)     a lease's processes use more than it booked
/// }
using gpu_broker_actor = caf::typed_actor<
  caf::replies_to<lease_atom, gpu_ask>::with<gpu_grant>,
  caf::replies_to<renew_atom, std::string>::with<gpu_grant>,
  caf::replies_to<release_atom, std::string>::with<gpu_use>,
  caf::reacts_to<attach_atom, std::string, int32_t>,
  caf::replies_to<snapshot_atom>::with<gpu_inventory>,
  caf::replies_to<leases_atom>::with<gpu_lease_list>,
  caf::replies_to<policy_atom>::with<gpu_policy>,
  caf::replies_to<policy_atom, gpu_policy, std::string>::with<std::string>,
  caf::replies_to<events_atom, int64_t>::with<gpu_event_list>,
  caf::replies_to<stats_atom>::with<gpu_broker_stats>,
  caf::reacts_to<tick_atom>>;

} // namespace troupe
