// sql_store: the store contract written once in SQL that SQLite and
// PostgreSQL both accept ($1, $2 … placeholders, values bound as text),
// over four primitives each database implements. Private to adapters/store/.
#pragma once

#include "adapters/store/store.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe::sql {

using value = std::optional<std::string>;  // nullopt: NULL
using row = std::vector<value>;
using params = std::vector<value>;

/// Thrown by the primitives; caught in sql_store and turned into errc::store_error.
struct db_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// One numbered migration: what it does, and its statements per dialect.
struct migration {
  int32_t version;
  std::string what;
  std::vector<std::string> statements;
};

class sql_store : public store {
public:
  caf::expected<int32_t> schema_version() override;
  caf::expected<apply_result> apply(const store_batch& batch) override;
  caf::expected<std::vector<run_row>> runs(const run_filter& filter) override;
  caf::expected<std::vector<run_row>> runs_by_prefix(const std::string& prefix,
                                                     int32_t limit) override;
  caf::expected<std::vector<run_row>> unfinished_runs() override;
  caf::error heartbeat(const std::string& owner, caf::timestamp now) override;
  caf::expected<std::vector<job_row>> jobs(const std::string& run_id) override;
  caf::expected<std::vector<attempt_row>> attempts(const std::string& run_id) override;
  caf::expected<std::vector<event_row>> events(const std::string& run_id,
                                               event_level min_level) override;
  caf::expected<std::vector<event_row>> events_after(const std::string& run_id, int64_t after,
                                                     int32_t limit) override;
  caf::expected<std::vector<std::pair<std::string, int64_t>>> count_runs() override;
  caf::expected<bool> take_over_run(const std::string& run_id, const std::string& owner_was,
                                    int64_t epoch_was, const std::string& owner,
                                    caf::timestamp now) override;
  caf::expected<bool> request_cancel(const std::string& run_id, caf::timestamp now) override;
  caf::expected<bool> reopen_run(const std::string& run_id, int64_t epoch_was,
                                 const std::string& owner, const std::string& host, int32_t pid,
                                 const std::vector<std::string>& jobs, const event_row& event,
                                 caf::timestamp now) override;
  caf::expected<std::vector<std::string>> cancel_requests(const std::string& owner) override;
  caf::error create_schedule(const schedule_row& s) override;
  caf::expected<std::vector<schedule_row>> schedules() override;
  caf::expected<std::optional<schedule_row>> find_schedule(const std::string& id) override;
  caf::expected<bool> update_schedule(const schedule_row& s) override;
  caf::expected<bool> delete_schedule(const std::string& id) override;
  caf::expected<std::vector<claimed_schedule>>
  claim_due_schedules(const std::string& coordinator, caf::timestamp now, caf::timestamp until,
                      int32_t limit) override;
  caf::expected<claim_outcome>
  finish_schedule_claim(const std::string& id, const std::string& coordinator,
                        const caf::optional<caf::timestamp>& next_run_at,
                        const std::vector<run_row>& launched,
                        const std::vector<schedule_event_row>& events) override;
  caf::error add_schedule_events(const std::vector<schedule_event_row>& events) override;
  caf::expected<std::vector<schedule_event_row>>
  schedule_events(const std::string& id, int64_t after, int32_t limit) override;
  caf::expected<std::vector<run_row>> active_runs_of(const std::string& schedule_id) override;
  caf::expected<bool> put_gpu_lease(const gpu_lease_row& l) override;
  caf::expected<std::vector<gpu_lease_row>> live_gpu_leases(const std::string& node) override;
  caf::expected<int64_t> add_gpu_event(const gpu_event_row& e) override;
  caf::expected<std::vector<gpu_event_row>> gpu_events(const std::string& node, int64_t after,
                                                       int32_t limit) override;

  /// Applies the migrations not yet applied, in one transaction.
  caf::error migrate();

protected:
  /// Runs one statement; returns its rows (as text; NULL as nullopt).
  virtual std::vector<row> exec(const std::string& sql, const params& p) = 0;
  /// A write transaction: exclusive against other writers of this database.
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  /// Whether apply() reads and writes a batch with a few multi-row
  /// statements (a server, where each statement is a round trip) rather than
  /// row by row.
  virtual bool batched_writes() const = 0;
  /// Appended to a SELECT that reads a row about to be updated.
  virtual std::string lock_clause() const = 0;
  /// The same, passing over rows another transaction holds (PostgreSQL's
  /// SKIP LOCKED; SQLite has one writer at a time and needs none).
  virtual std::string skip_locked_clause() const = 0;
  virtual std::vector<migration> migrations() const = 0;
  /// Inside migrate()'s transaction, before anything else: keeps two
  /// processes from migrating one database at once.
  virtual void lock_migrations() = 0;

private:
  template <class F>
  auto guarded(const char* what, F f) -> caf::expected<decltype(f())>;
  template <class F>
  auto in_transaction(F f) -> decltype(f());
  caf::expected<apply_result> apply_rows(const store_batch& batch);
  void write_run(const run_row& r, apply_result& out, caf::timestamp now);
  int64_t run_epoch(const std::string& run_id);
  bool fenced(apply_result& out, const std::string& run_id, const std::string& job,
              int32_t attempt, int64_t epoch, int64_t stored, const std::string& what,
              caf::timestamp now);
  void write_job(const job_row& r, apply_result& out, caf::timestamp now);
  void write_attempt(const attempt_row& r, apply_result& out, caf::timestamp now);
  void write_event(const event_row& e);
  void write_schedule_event(const schedule_event_row& e);
  void refuse(apply_result& out, const std::string& run_id, const std::string& job,
              int32_t attempt, std::string what, caf::timestamp now);
};

} // namespace troupe::sql
