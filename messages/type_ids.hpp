// The project's one CAF type-ID block: every message struct and atom, so that
// each can cross the network under the same name on both ends.
// A second block (troupe_handles) holds typed handles that travel in messages.
#pragma once

#include <caf/type_id.hpp>

namespace troupe {
struct host_figures;
struct tree_figures;
struct gpu_figures;
struct top_process;
struct snapshot;
struct sample_request;
struct job_spec;
struct job_result;
struct process_exit;
struct host_info;
struct run_options;
struct stage_resources;
struct stage_record;
struct run_record;
struct progress_event;
struct run_row;
struct job_row;
struct attempt_row;
struct event_row;
struct store_batch;
struct http_request;
struct http_stats;
struct write_health;
struct job_key;
struct resource_request;
struct gpu_process;
struct gpu_ask;
struct gpu_grant;
struct gpu_use;
struct gpu_inventory;
struct gpu_attempt;
struct gpu_policy;
struct gpu_event;
struct gpu_event_list;
struct gpu_broker_stats;
struct gpu_lease_list;
} // namespace troupe

CAF_BEGIN_TYPE_ID_BLOCK(troupe, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(troupe, (troupe::host_figures))
  CAF_ADD_TYPE_ID(troupe, (troupe::tree_figures))
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_figures))
  CAF_ADD_TYPE_ID(troupe, (troupe::top_process))
  CAF_ADD_TYPE_ID(troupe, (troupe::snapshot))
  CAF_ADD_TYPE_ID(troupe, (troupe::sample_request))
  CAF_ADD_TYPE_ID(troupe, (troupe::job_spec))
  CAF_ADD_TYPE_ID(troupe, (troupe::job_result))
  CAF_ADD_TYPE_ID(troupe, (troupe::process_exit))
  CAF_ADD_TYPE_ID(troupe, (troupe::host_info))
  CAF_ADD_TYPE_ID(troupe, (troupe::run_options))
  CAF_ADD_TYPE_ID(troupe, (troupe::stage_resources))
  CAF_ADD_TYPE_ID(troupe, (troupe::stage_record))
  CAF_ADD_TYPE_ID(troupe, (troupe::run_record))
  CAF_ADD_TYPE_ID(troupe, (troupe::progress_event))
  CAF_ADD_TYPE_ID(troupe, (troupe::run_row))
  CAF_ADD_TYPE_ID(troupe, (troupe::job_row))
  CAF_ADD_TYPE_ID(troupe, (troupe::attempt_row))
  CAF_ADD_TYPE_ID(troupe, (troupe::event_row))
  CAF_ADD_TYPE_ID(troupe, (troupe::store_batch))
  CAF_ADD_TYPE_ID(troupe, (troupe::http_request))
  CAF_ADD_TYPE_ID(troupe, (troupe::http_stats))
  CAF_ADD_TYPE_ID(troupe, (troupe::write_health))
  CAF_ADD_TYPE_ID(troupe, (troupe::job_key))
  CAF_ADD_ATOM(troupe, troupe, start_atom, "start")
  CAF_ADD_ATOM(troupe, troupe, cancel_atom, "cancel")
  CAF_ADD_ATOM(troupe, troupe, exited_atom, "exited")
  CAF_ADD_ATOM(troupe, troupe, synced_atom, "synced")
  CAF_ADD_ATOM(troupe, troupe, timeout_atom, "timeout")
  CAF_ADD_ATOM(troupe, troupe, kill_atom, "kill")
  CAF_ADD_ATOM(troupe, troupe, poll_atom, "poll")
  CAF_ADD_ATOM(troupe, troupe, snapshot_atom, "snapshot")
  CAF_ADD_ATOM(troupe, troupe, watch_atom, "watch")
  CAF_ADD_ATOM(troupe, troupe, unwatch_atom, "unwatch")
  CAF_ADD_ATOM(troupe, troupe, tick_atom, "tick")
  CAF_ADD_ATOM(troupe, troupe, sample_atom, "sample")
  CAF_ADD_ATOM(troupe, troupe, metadata_atom, "metadata")
  CAF_ADD_ATOM(troupe, troupe, trace_atom, "trace")
  CAF_ADD_ATOM(troupe, troupe, sync_atom, "sync")
  CAF_ADD_ATOM(troupe, troupe, spawned_atom, "spawned")
  CAF_ADD_ATOM(troupe, troupe, launched_atom, "launched")
  CAF_ADD_ATOM(troupe, troupe, launch_failed_atom, "launchfail")
  CAF_ADD_ATOM(troupe, troupe, persist_atom, "persist")
  CAF_ADD_ATOM(troupe, troupe, flush_atom, "flush")
  CAF_ADD_ATOM(troupe, troupe, retry_atom, "retry")
  CAF_ADD_ATOM(troupe, troupe, fetched_atom, "fetched")
  CAF_ADD_ATOM(troupe, troupe, written_atom, "written")
  CAF_ADD_ATOM(troupe, troupe, launch_atom, "launch")
  CAF_ADD_ATOM(troupe, troupe, stats_atom, "stats")
  CAF_ADD_ATOM(troupe, troupe, limit_atom, "limit")
  CAF_ADD_ATOM(troupe, troupe, read_atom, "read")
  CAF_ADD_ATOM(troupe, troupe, read_done_atom, "readdone")
  CAF_ADD_ATOM(troupe, troupe, capacity_atom, "capacity")
  CAF_ADD_TYPE_ID(troupe, (troupe::resource_request))
  CAF_ADD_ATOM(troupe, troupe, waiting_atom, "waiting")
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_process))
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_ask))
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_grant))
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_use))
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_inventory))
  CAF_ADD_ATOM(troupe, troupe, lease_atom, "lease")
  CAF_ADD_ATOM(troupe, troupe, renew_atom, "renew")
  CAF_ADD_ATOM(troupe, troupe, release_atom, "release")
  CAF_ADD_ATOM(troupe, troupe, attach_atom, "attach")
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_attempt))
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_policy))
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_broker_stats))
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_lease_list))
  CAF_ADD_ATOM(troupe, troupe, leases_atom, "leases")
  CAF_ADD_ATOM(troupe, troupe, policy_atom, "policy")
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_event))
  CAF_ADD_TYPE_ID(troupe, (troupe::gpu_event_list))
  CAF_ADD_ATOM(troupe, troupe, events_atom, "events")
CAF_END_TYPE_ID_BLOCK(troupe)
