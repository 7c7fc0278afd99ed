// store: all that the rest of troupe knows about persistence. Runs, jobs,
// attempts and events (messages/store.hpp) in SQLite (the embedded default)
// or PostgreSQL; the same contract on both (tests/adapters/store_contract.hpp).
//
// Calls block (disk, network): call them from a detached actor or a thread of
// your own, never from a CAF scheduler thread. One store object is used by
// one thread at a time; open one per thread for concurrent writers.
#pragma once

#include "messages/store.hpp"

#include <caf/expected.hpp>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace troupe {

/// What apply() did: rows written, and the transitions it refused.
struct apply_result {
  int32_t written = 0;
  std::vector<std::string> refused;  // "runs[<id>]: succeeded -> running is not a legal transition"
  std::vector<std::string> refused_runs;  // the run each refusal belongs to, in the same order
};

struct run_filter {
  std::optional<run_status> status;
  std::string pipeline;  // empty: any
  int32_t limit = 50;
  std::string after;  // a cursor: only runs that come after this run id in the order
};

/// A schedule a coordinator now holds the claim of.
struct claimed_schedule {
  schedule_row row;
  std::string taken_from;  // the coordinator whose expired claim this took over; "" when none
};

/// What finish_schedule_claim did.
struct claim_outcome {
  bool held = false;  // false: the claim had expired and someone else holds it; nothing written
  std::vector<std::string> inserted;  // the runs written (a tick already launched is left out)
};

class store {
public:
  virtual ~store() = default;

  /// "sqlite" or "postgresql".
  virtual std::string kind() const = 0;

  /// Where it is, for people (the file, or the URL without its password).
  virtual std::string location() const = 0;

  /// The highest migration applied.
  virtual caf::expected<int32_t> schema_version() = 0;

  /// Writes `batch` in one transaction (see messages/store.hpp). Refused
  /// transitions are left out, listed in the result, and recorded as warn
  /// events; any other failure rolls everything back: errc::store_error.
  virtual caf::expected<apply_result> apply(const store_batch& batch) = 0;

  /// Newest first.
  virtual caf::expected<std::vector<run_row>> runs(const run_filter& filter) = 0;
  /// The runs whose id starts with `prefix` (at most `limit`).
  virtual caf::expected<std::vector<run_row>> runs_by_prefix(const std::string& prefix,
                                                             int32_t limit) = 0;
  /// Runs still queued or running (for crash recovery).
  virtual caf::expected<std::vector<run_row>> unfinished_runs() = 0;
  /// `owner` is alive at `now`: every unfinished run it owns reads
  /// heartbeat_at = `now` from then on (or its own, when later). One write,
  /// however many runs it holds.
  virtual caf::error heartbeat(const std::string& owner, caf::timestamp now) = 0;
  /// In pipeline order.
  virtual caf::expected<std::vector<job_row>> jobs(const std::string& run_id) = 0;
  /// In pipeline order, then by attempt.
  virtual caf::expected<std::vector<attempt_row>> attempts(const std::string& run_id) = 0;
  /// In the order written; only `min_level` and above.
  virtual caf::expected<std::vector<event_row>> events(const std::string& run_id,
                                                       event_level min_level) = 0;
  /// The events of `run_id` with an id above `after`, in the order written,
  /// at most `limit`.
  virtual caf::expected<std::vector<event_row>> events_after(const std::string& run_id,
                                                             int64_t after, int32_t limit) = 0;
  /// How many runs there are in each status (statuses with none left out).
  virtual caf::expected<std::vector<std::pair<std::string, int64_t>>> count_runs() = 0;
  /// Takes over an unfinished run whose owner is lost: owner := `owner`,
  /// epoch := `epoch_was` + 1, only if it still has `owner_was` and
  /// `epoch_was` (one coordinator wins when several try). True when taken.
  virtual caf::expected<bool> take_over_run(const std::string& run_id,
                                            const std::string& owner_was, int64_t epoch_was,
                                            const std::string& owner, caf::timestamp now) = 0;

  /// Asks the owner of unfinished run `run_id` to cancel it (it looks with
  /// cancel_requests). False when the run is not unfinished.
  virtual caf::expected<bool> request_cancel(const std::string& run_id, caf::timestamp now) = 0;
  /// A rerun: the ended run `run_id` (at `epoch_was`) goes back to running,
  /// held by `owner` (`host`, `pid`) at epoch_was + 1; `jobs` go back to
  /// pending (their attempts stay); `event` says who asked and why. One
  /// transaction; false when the run is not ended or was taken meanwhile.
  virtual caf::expected<bool> reopen_run(const std::string& run_id, int64_t epoch_was,
                                         const std::string& owner, const std::string& host,
                                         int32_t pid, const std::vector<std::string>& jobs,
                                         const event_row& event, caf::timestamp now) = 0;
  /// The unfinished runs of `owner` whose cancel was requested.
  virtual caf::expected<std::vector<std::string>> cancel_requests(const std::string& owner) = 0;

  // Schedules (the coordinator's; see docs/coordinator.md).
  virtual caf::error create_schedule(const schedule_row& s) = 0;
  /// Oldest first.
  virtual caf::expected<std::vector<schedule_row>> schedules() = 0;
  virtual caf::expected<std::optional<schedule_row>> find_schedule(const std::string& id) = 0;
  /// Writes every field but id, created_at and the claim; false when no such schedule.
  virtual caf::expected<bool> update_schedule(const schedule_row& s) = 0;
  /// False when no such schedule.
  virtual caf::expected<bool> delete_schedule(const std::string& id) = 0;
  /// Claims, until `until`, at most `limit` enabled schedules due at `now`
  /// (next_run_at <= now) whose claim is free or expired, and records each
  /// claim as an event. Safe against other coordinators on the same
  /// database: each due row goes to one of them.
  virtual caf::expected<std::vector<claimed_schedule>>
  claim_due_schedules(const std::string& coordinator, caf::timestamp now, caf::timestamp until,
                      int32_t limit) = 0;
  /// In one transaction, if `coordinator` still holds the claim of schedule
  /// `id`: inserts `launched` (runs queued with their schedule_id and
  /// scheduled_for; a tick already in the store is left out), sets
  /// next_run_at, records `events`, and releases the claim.
  virtual caf::expected<claim_outcome>
  finish_schedule_claim(const std::string& id, const std::string& coordinator,
                        const caf::optional<caf::timestamp>& next_run_at,
                        const std::vector<run_row>& launched,
                        const std::vector<schedule_event_row>& events) = 0;
  /// Appends decisions that need no claim (a schedule created, edited).
  virtual caf::error add_schedule_events(const std::vector<schedule_event_row>& events) = 0;
  /// Ids above `after`, oldest first, at most `limit`.
  virtual caf::expected<std::vector<schedule_event_row>>
  schedule_events(const std::string& id, int64_t after, int32_t limit) = 0;
  /// The runs of a schedule still queued or running.
  virtual caf::expected<std::vector<run_row>> active_runs_of(const std::string& schedule_id) = 0;

  // GPU leases (the node's broker; docs/gpu.md).
  /// Compare-and-set: `l` is written at l.version + 1 when the stored row is
  /// at l.version (0: inserted, when no row has its id). False when another
  /// writer got there first; nothing is written then.
  virtual caf::expected<bool> put_gpu_lease(const gpu_lease_row& l) = 0;
  /// The leases of `node` still queued, active or releasing, oldest first.
  virtual caf::expected<std::vector<gpu_lease_row>> live_gpu_leases(const std::string& node) = 0;
  /// Appends a GPU broker event; answers the id it was given.
  virtual caf::expected<int64_t> add_gpu_event(const gpu_event_row& e) = 0;
  /// `node`'s GPU events with an id above `after`, oldest first, at most `limit`.
  virtual caf::expected<std::vector<gpu_event_row>>
  gpu_events(const std::string& node, int64_t after, int32_t limit) = 0;
};

/// Opens (creating where needed) and migrates a store:
///   "postgresql://…" or "postgres://…"  PostgreSQL (libpq connection URI)
///   "sqlite:PATH" or a plain PATH       SQLite (created with its folder)
/// errc::bad_input names what is wrong with the URL; errc::store_error says
/// why the database could not be opened or migrated.
caf::expected<std::unique_ptr<store>> open_store(const std::string& url);

/// The checks of open_store that need no file or server: errc::bad_input
/// for an empty URL, an unknown scheme or "sqlite:" without a path.
caf::error check_store_url(const std::string& url);

/// The URL with any password replaced by "***", for messages.
std::string redact_url(const std::string& url);

} // namespace troupe
