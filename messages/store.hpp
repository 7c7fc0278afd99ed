// What the store keeps (rows of runs, jobs, attempts, events) and the store
// actor's interface. The rows are plain data so that they can cross the
// network to a coordinator's store later; the SQL lives in adapters/store/.
//
// A store_batch is applied in one transaction: runs, then jobs, then
// attempts, then events. A row whose status change is not legal() (see
// messages/status.hpp) is refused: not written, counted and logged; the rest
// of the batch is written. Any other failure (a constraint, the database
// going away) rolls the whole batch back.
#pragma once

#include "messages/status.hpp"
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

/// One run. Inserted on first sight, then updated by run_id.
struct run_row {
  std::string run_id;
  std::string pipeline;       // the pipeline's name
  std::string pipeline_file;  // absolute
  std::string run_dir;        // absolute
  run_status status = run_status::queued;
  failure_code failure = failure_code::none;
  std::string reason;  // why it ended the way it did, for people
  std::string host;    // the host and pid of the troupe process driving it:
  int32_t pid = 0;     // crash recovery only touches runs of dead processes
  caf::timestamp created_at;
  caf::optional<caf::timestamp> started_at;
  caf::optional<caf::timestamp> finished_at;
  caf::timestamp updated_at;
  std::string owner;  // "host:pid:start-ticks" of the process driving it (see owner_token)
  caf::optional<caf::timestamp> heartbeat_at;  // its last sign of life (non-terminal runs)
  int64_t epoch = 1;  // fencing: the writer's; one more than the stored one takes the run over
  std::string schedule_id;  // the schedule that launched it; "" when none
  caf::optional<caf::timestamp> scheduled_for;  // the due time it stands for (with schedule_id)
  std::string params = "{}";  // the parameter values it was given, a JSON object (set once)
  std::string state = "{}";   // its state probes (probe_state_json), "{}" when none
  std::string pipeline_sha256;  // the pipeline file's hash when it was made (set once)
  std::string launched_by;  // manual (troupe run), api, schedule or trigger; "" before v9 (set once)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, run_row& x) {
  return f(caf::meta::type_name("troupe::run_row"), x.run_id, x.pipeline, x.pipeline_file,
           x.run_dir, x.status, x.failure, x.reason, x.host, x.pid, x.created_at,
           x.started_at, x.finished_at, x.updated_at, x.owner, x.heartbeat_at, x.epoch,
           x.schedule_id, x.scheduled_for, x.params, x.state, x.pipeline_sha256, x.launched_by);
}

/// One job (a stage of a run). Keyed by (run_id, job).
struct job_row {
  std::string run_id;
  std::string job;  // the stage name
  int32_t position = 0;  // the stage's index in the pipeline
  stage_status status = stage_status::pending;
  int32_t attempts = 0;  // attempts started so far
  failure_code failure = failure_code::none;
  std::string error;
  caf::timestamp updated_at;
  int64_t epoch = 1;  // the writer's: must be the run's current epoch
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_row& x) {
  return f(caf::meta::type_name("troupe::job_row"), x.run_id, x.job, x.position, x.status,
           x.attempts, x.failure, x.error, x.updated_at, x.epoch);
}

/// One attempt of a job. Keyed by (run_id, job, attempt), attempt from 1.
struct attempt_row {
  std::string run_id;
  std::string job;
  int32_t attempt = 1;
  stage_status status = stage_status::pending;
  std::string strategy;  // exec | http | browser
  failure_code failure = failure_code::none;
  std::string error;
  caf::optional<int32_t> exit_code;
  caf::optional<int32_t> signal;
  caf::optional<int32_t> http_status;
  int32_t pid = 0;
  caf::optional<caf::timestamp> started_at;
  caf::optional<caf::timestamp> finished_at;
  int64_t duration_ms = 0;
  std::string stats;  // JSON object: resources, HTTP figures; "{}" when none
  caf::timestamp updated_at;
  std::string cgroup;  // the job cgroup it ran in, on its host; "" when none
  int64_t epoch = 1;   // the writer's: must be the run's current epoch (stored with the row)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, attempt_row& x) {
  return f(caf::meta::type_name("troupe::attempt_row"), x.run_id, x.job, x.attempt,
           x.status, x.strategy, x.failure, x.error, x.exit_code, x.signal,
           x.http_status, x.pid, x.started_at, x.finished_at, x.duration_ms, x.stats,
           x.updated_at, x.cgroup, x.epoch);
}

enum class event_level : uint8_t { info, warn, error };

std::string to_string(event_level x);
caf::optional<event_level> parse_event_level(const std::string& s);

/// One event: append-only. `job` is empty and `attempt` 0 for run events.
struct event_row {
  int64_t id = 0;  // assigned by the store; 0 before
  caf::timestamp ts;
  std::string run_id;
  std::string job;
  int32_t attempt = 0;
  event_level level = event_level::info;
  std::string message;
  std::string meta = "{}";  // a JSON object
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_row& x) {
  return f(caf::meta::type_name("troupe::event_row"), x.id, x.ts, x.run_id, x.job,
           x.attempt, x.level, x.message, x.meta);
}

/// A schedule: when a registered pipeline is launched by the coordinators.
/// Plain data for the store (not a message). `spec` is the kind's own text:
/// the ISO-8601 time (once), the duration (interval) or the cron line.
/// A GPU lease as the store keeps it (the node's broker writes it; docs/gpu.md).
/// Written with compare-and-set on `version`, so two writers cannot both win.
struct gpu_lease_row {
  std::string id;
  std::string node;        // the node whose GPUs it holds (its host, for now)
  std::string holder;
  std::string state;       // queued | active | releasing | released | expired
  std::string gpus;        // a JSON array of UUIDs
  bool exclusive = false;
  int32_t count = 1;       // GPUs it holds (asked for)
  int64_t memory_bytes = 0;
  int32_t priority = 0;
  int64_t ttl_ms = 0;      // 0: no expiry
  caf::timestamp requested_at;
  caf::optional<caf::timestamp> granted_at;
  caf::optional<caf::timestamp> expires_at;
  caf::optional<caf::timestamp> released_at;
  std::string end_reason;
  int64_t version = 0;     // 0: not stored yet
};

/// What a node's GPU broker did beyond a lease's own row: a policy change
/// (who, from what to what), over-use, an expiry, a booking freed only by
/// the grace, GPUs another broker on the host owns.
struct gpu_event_row {
  int64_t id = 0;          // assigned by the store, increasing
  caf::timestamp ts;
  std::string node;
  std::string kind;        // policy | overuse | expired | freed_by_grace | held_elsewhere
  std::string lease_id;    // "" for policy and held_elsewhere
  std::string holder;
  std::string message;
};

struct schedule_row {
  std::string id;
  std::string pipeline;
  std::string kind;       // once | interval | cron
  std::string spec;
  caf::timestamp anchor;  // interval: ticks are anchor + k * every
  std::string overlap = "allow";  // allow | forbid | replace
  std::string catch_up = "one";   // none | one | all
  bool enabled = true;
  int32_t priority = 0;
  std::string options = "{}";  // JSON: {"enable": [...], "env": {...}} for its runs
  caf::optional<caf::timestamp> next_run_at;  // the first tick not yet handled; none: done
  std::string claimed_by;  // the coordinator holding the claim; "" when none
  caf::optional<caf::timestamp> claimed_until;
  std::string last_run_id;
  caf::timestamp created_at;
  caf::timestamp updated_at;
};

/// One decision about a schedule (claimed, taken over, launched, skipped,
/// caught up): append-only, like a run's events.
struct schedule_event_row {
  int64_t id = 0;  // assigned by the store
  caf::timestamp ts;
  std::string schedule_id;
  std::string coordinator;
  std::string kind;  // claimed | taken_over | launched | skipped | caught_up | replaced | released
  caf::optional<caf::timestamp> scheduled_for;
  std::string run_id;
  std::string message;
};

struct store_batch {
  std::vector<run_row> runs;
  std::vector<job_row> jobs;
  std::vector<attempt_row> attempts;
  std::vector<event_row> events;

  bool empty() const {
    return runs.empty() && jobs.empty() && attempts.empty() && events.empty();
  }
  size_t size() const {
    return runs.size() + jobs.size() + attempts.size() + events.size();
  }
  void append(store_batch&& other);
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, store_batch& x) {
  return f(caf::meta::type_name("troupe::store_batch"), x.runs, x.jobs, x.attempts,
           x.events);
}

/// What a writer (store_writer, artifact_writer) answers to sync: how many
/// writes failed so far, and the first failure in words ("metadata.json:
/// No space left on device"), empty when none did.
struct write_health {
  int32_t failures = 0;
  std::string first_error;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, write_health& x) {
  return f(caf::meta::type_name("troupe::write_health"), x.failures, x.first_error);
}

/// interface store {
///   (persist_atom, store_batch) -> void   // queued; written with the next group commit
///   (sync_atom) -> write_health           // after every batch sent before it is
///                                         // committed: the rows refused or lost so
///                                         // far (0: all written), the first reason
///   (sync_atom, std::string run_id) -> write_health
///                                         // the same barrier, counting that run's
///                                         // rows only: one run's refused row does not
///                                         // fail another run
///   internal: (flush_atom)                // commit what is queued
///   internal: (tick_atom)                 // heartbeat the unfinished runs it wrote
/// }
/// The writer refreshes heartbeat_at of every run it has written as
/// unfinished (by that run row's owner) every heartbeat interval, until it
/// writes the run as terminal: the owner's sign of life (runtime/liveness).
using store_actor = caf::typed_actor<
  caf::reacts_to<persist_atom, store_batch>,
  caf::replies_to<sync_atom>::with<write_health>,
  caf::replies_to<sync_atom, std::string>::with<write_health>,
  caf::reacts_to<flush_atom>,
  caf::reacts_to<tick_atom>>;

} // namespace troupe
