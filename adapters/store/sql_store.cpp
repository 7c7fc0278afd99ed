#include "adapters/store/sql_store.hpp"

#include "messages/errors.hpp"
#include "messages/json.hpp"

#include <caf/make_message.hpp>

#include <cstdio>
#include <map>
#include <set>
#include <tuple>

namespace troupe::sql {

namespace {

value text(const std::string& s) {
  return s;
}

value num(int64_t x) {
  return std::to_string(x);
}

value opt_num(const caf::optional<int32_t>& x) {
  return x ? value{std::to_string(*x)} : std::nullopt;
}

value ts(caf::timestamp t) {
  return iso8601(t);
}

value opt_ts(const caf::optional<caf::timestamp>& t) {
  return t ? value{iso8601(*t)} : std::nullopt;
}

value code(failure_code c) {
  return c == failure_code::none ? std::nullopt : value{to_string(c)};
}

// Readers of one column.
const std::string& str(const row& r, size_t i) {
  static const std::string empty;
  return r.at(i) ? *r[i] : empty;
}

int64_t int_of(const row& r, size_t i) {
  return r.at(i) ? std::stoll(*r[i]) : 0;
}

caf::optional<int32_t> opt_int_of(const row& r, size_t i) {
  if (!r.at(i))
    return caf::none;
  return static_cast<int32_t>(std::stol(*r[i]));
}

caf::timestamp ts_of(const row& r, size_t i) {
  if (auto t = parse_iso8601(str(r, i)))
    return *t;
  return caf::timestamp{};
}

caf::optional<caf::timestamp> opt_ts_of(const row& r, size_t i) {
  if (!r.at(i))
    return caf::none;
  if (auto t = parse_iso8601(*r[i]))
    return *t;
  return caf::none;
}

failure_code code_of(const row& r, size_t i) {
  if (!r.at(i))
    return failure_code::none;
  return parse_failure_code(*r[i]).value_or(failure_code::unknown);
}

constexpr const char* run_columns =
  "run_id, pipeline, pipeline_file, run_dir, status, failure, reason, host, pid, "
  "created_at, started_at, finished_at, updated_at, owner, heartbeat_at, epoch, schedule_id, "
  "scheduled_for, params, state, pipeline_sha256, launched_by";

// The same, read from `runs`: an unfinished run's heartbeat_at is the later
// of its own and its owner's (the owners table, one row per live owner).
// Times are ISO-8601 text of one width, so text order is time order.
#define TROUPE_OWNER_BEAT                                                                   \
  "(SELECT o.heartbeat_at FROM owners o WHERE o.owner = runs.owner "                        \
  "AND runs.status IN ('queued', 'running'))"
constexpr const char* run_select =
  "run_id, pipeline, pipeline_file, run_dir, status, failure, reason, host, pid, "
  "created_at, started_at, finished_at, updated_at, owner, "
  "CASE WHEN " TROUPE_OWNER_BEAT " IS NOT NULL AND (heartbeat_at IS NULL OR " TROUPE_OWNER_BEAT
  " > heartbeat_at) THEN " TROUPE_OWNER_BEAT " ELSE heartbeat_at END, "
  "epoch, schedule_id, scheduled_for, params, state, pipeline_sha256, launched_by";
#undef TROUPE_OWNER_BEAT

run_row run_of(const row& r) {
  run_row x;
  x.run_id = str(r, 0);
  x.pipeline = str(r, 1);
  x.pipeline_file = str(r, 2);
  x.run_dir = str(r, 3);
  x.status = parse_run_status(str(r, 4)).value_or(run_status::failed);
  x.failure = code_of(r, 5);
  x.reason = str(r, 6);
  x.host = str(r, 7);
  x.pid = static_cast<int32_t>(int_of(r, 8));
  x.created_at = ts_of(r, 9);
  x.started_at = opt_ts_of(r, 10);
  x.finished_at = opt_ts_of(r, 11);
  x.updated_at = ts_of(r, 12);
  x.owner = str(r, 13);
  x.heartbeat_at = opt_ts_of(r, 14);
  x.epoch = int_of(r, 15);
  x.schedule_id = str(r, 16);
  x.scheduled_for = opt_ts_of(r, 17);
  x.params = str(r, 18);
  x.state = str(r, 19);
  x.pipeline_sha256 = str(r, 20);
  x.launched_by = str(r, 21);
  return x;
}

constexpr const char* schedule_columns =
  "id, pipeline, kind, spec, anchor, overlap, catch_up, enabled, priority, options, "
  "next_run_at, claimed_by, claimed_until, last_run_id, created_at, updated_at";

schedule_row schedule_of(const row& r) {
  schedule_row x;
  x.id = str(r, 0);
  x.pipeline = str(r, 1);
  x.kind = str(r, 2);
  x.spec = str(r, 3);
  x.anchor = ts_of(r, 4);
  x.overlap = str(r, 5);
  x.catch_up = str(r, 6);
  x.enabled = int_of(r, 7) != 0;
  x.priority = static_cast<int32_t>(int_of(r, 8));
  x.options = str(r, 9);
  x.next_run_at = opt_ts_of(r, 10);
  x.claimed_by = str(r, 11);
  x.claimed_until = opt_ts_of(r, 12);
  x.last_run_id = str(r, 13);
  x.created_at = ts_of(r, 14);
  x.updated_at = ts_of(r, 15);
  return x;
}

constexpr const char* schedule_event_columns =
  "id, ts, schedule_id, coordinator, kind, scheduled_for, run_id, message";

schedule_event_row schedule_event_of(const row& r) {
  schedule_event_row x;
  x.id = int_of(r, 0);
  x.ts = ts_of(r, 1);
  x.schedule_id = str(r, 2);
  x.coordinator = str(r, 3);
  x.kind = str(r, 4);
  x.scheduled_for = opt_ts_of(r, 5);
  x.run_id = str(r, 6);
  x.message = str(r, 7);
  return x;
}

constexpr const char* job_columns =
  "run_id, job, position, status, attempts, failure, error, updated_at";

job_row job_of(const row& r) {
  job_row x;
  x.run_id = str(r, 0);
  x.job = str(r, 1);
  x.position = static_cast<int32_t>(int_of(r, 2));
  x.status = parse_stage_status(str(r, 3)).value_or(stage_status::failed);
  x.attempts = static_cast<int32_t>(int_of(r, 4));
  x.failure = code_of(r, 5);
  x.error = str(r, 6);
  x.updated_at = ts_of(r, 7);
  return x;
}

constexpr const char* attempt_columns =
  "a.run_id, a.job, a.attempt, a.status, a.strategy, a.failure, a.error, a.exit_code, "
  "a.signal, a.http_status, a.pid, a.started_at, a.finished_at, a.duration_ms, a.stats, "
  "a.updated_at, a.cgroup, a.epoch";

attempt_row attempt_of(const row& r) {
  attempt_row x;
  x.run_id = str(r, 0);
  x.job = str(r, 1);
  x.attempt = static_cast<int32_t>(int_of(r, 2));
  x.status = parse_stage_status(str(r, 3)).value_or(stage_status::failed);
  x.strategy = str(r, 4);
  x.failure = code_of(r, 5);
  x.error = str(r, 6);
  x.exit_code = opt_int_of(r, 7);
  x.signal = opt_int_of(r, 8);
  x.http_status = opt_int_of(r, 9);
  x.pid = static_cast<int32_t>(int_of(r, 10));
  x.started_at = opt_ts_of(r, 11);
  x.finished_at = opt_ts_of(r, 12);
  x.duration_ms = int_of(r, 13);
  x.stats = str(r, 14);
  x.updated_at = ts_of(r, 15);
  x.cgroup = str(r, 16);
  x.epoch = int_of(r, 17);
  return x;
}

constexpr const char* event_columns = "id, ts, run_id, job, attempt, level, message, meta";

event_row event_of(const row& r) {
  event_row x;
  x.id = int_of(r, 0);
  x.ts = ts_of(r, 1);
  x.run_id = str(r, 2);
  x.job = str(r, 3);
  x.attempt = static_cast<int32_t>(int_of(r, 4));
  x.level = parse_event_level(str(r, 5)).value_or(event_level::info);
  x.message = str(r, 6);
  x.meta = str(r, 7);
  return x;
}

template <class T, class F>
std::vector<T> map_rows(const std::vector<row>& rows, F f) {
  std::vector<T> out;
  out.reserve(rows.size());
  for (auto& r : rows)
    out.push_back(f(r));
  return out;
}

} // namespace

template <class F>
auto sql_store::guarded(const char* what, F f) -> caf::expected<decltype(f())> {
  try {
    return f();
  } catch (const std::exception& e) {
    return caf::make_error(errc::store_error,
                           kind() + " " + location() + ": " + what + ": " + e.what());
  }
}

template <class F>
auto sql_store::in_transaction(F f) -> decltype(f()) {
  begin();
  try {
    auto result = f();
    commit();
    return result;
  } catch (...) {
    rollback();
    throw;
  }
}

caf::error sql_store::migrate() {
  auto done = guarded("migrate", [&] {
    return in_transaction([&] {
      lock_migrations();
      exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
           "what TEXT NOT NULL, applied_at TEXT NOT NULL)",
           {});
      auto rows = exec("SELECT COALESCE(MAX(version), 0) FROM schema_version", {});
      int64_t current = rows.empty() ? 0 : int_of(rows[0], 0);
      for (auto& m : migrations()) {
        if (m.version <= current)
          continue;
        for (auto& stmt : m.statements)
          exec(stmt, {});
        exec("INSERT INTO schema_version (version, what, applied_at) VALUES ($1, $2, $3)",
             {num(m.version), text(m.what), ts(caf::make_timestamp())});
      }
      return true;
    });
  });
  if (!done)
    return std::move(done.error());
  return caf::none;
}

caf::expected<int32_t> sql_store::schema_version() {
  return guarded("schema_version", [&] {
    auto rows = exec("SELECT COALESCE(MAX(version), 0) FROM schema_version", {});
    return static_cast<int32_t>(rows.empty() ? 0 : int_of(rows[0], 0));
  });
}

void sql_store::refuse(apply_result& out, const std::string& run_id, const std::string& job,
                       int32_t attempt, std::string what, caf::timestamp now) {
  std::fprintf(stderr, "troupe: store: refused: %s\n", what.c_str());
  event_row ev;
  ev.ts = now;
  ev.run_id = run_id;
  ev.job = job;
  ev.attempt = attempt;
  ev.level = event_level::warn;
  ev.message = "refused: " + what;
  // Only where the run exists: an event cannot point at nothing.
  if (!exec("SELECT 1 FROM runs WHERE run_id = $1", {text(run_id)}).empty())
    write_event(ev);
  out.refused.push_back(std::move(what));
  out.refused_runs.push_back(run_id);
}

// The run's stored epoch, for the fencing of job and attempt rows; 0 when
// the run is not (yet) stored.
int64_t sql_store::run_epoch(const std::string& run_id) {
  auto rows = exec("SELECT epoch FROM runs WHERE run_id = $1", {text(run_id)});
  return rows.empty() ? 0 : int_of(rows[0], 0);
}

// A row written with `epoch` for a run at `stored`: refused (and logged) when
// the writer is stale. True when it may be written.
bool sql_store::fenced(apply_result& out, const std::string& run_id, const std::string& job,
                       int32_t attempt, int64_t epoch, int64_t stored, const std::string& what,
                       caf::timestamp now) {
  if (stored == 0 || epoch == stored)
    return true;
  refuse(out, run_id, job, attempt,
         what + ": written at epoch " + std::to_string(epoch) + ", the run is at epoch "
           + std::to_string(stored) + " (a stale owner; the run was taken over)",
         now);
  return false;
}

void sql_store::write_run(const run_row& r, apply_result& out, caf::timestamp now) {
  auto cur = exec("SELECT status, epoch FROM runs WHERE run_id = $1" + lock_clause(),
                  {text(r.run_id)});
  if (cur.empty()) {
    exec(std::string("INSERT INTO runs (") + run_columns
           + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
             "$17, $18, $19, $20, $21, $22)",
         {text(r.run_id), text(r.pipeline), text(r.pipeline_file), text(r.run_dir),
          text(to_string(r.status)), code(r.failure), text(r.reason), text(r.host), num(r.pid),
          ts(r.created_at), opt_ts(r.started_at), opt_ts(r.finished_at), ts(now), text(r.owner),
          is_terminal(r.status) ? value{} : ts(now), num(r.epoch),
          r.schedule_id.empty() ? value{} : text(r.schedule_id), opt_ts(r.scheduled_for),
          text(r.params.empty() ? "{}" : r.params), text(r.state.empty() ? "{}" : r.state),
          text(r.pipeline_sha256), text(r.launched_by)});
    ++out.written;
    return;
  }
  // Fencing: the current epoch writes; the next one takes the run over (and
  // from then on the old one is refused); anything else is a stale writer.
  auto stored = int_of(cur[0], 1);
  if (r.epoch != stored && r.epoch != stored + 1) {
    fenced(out, r.run_id, "", 0, r.epoch, stored, "run " + r.run_id, now);
    return;
  }
  auto from = parse_run_status(str(cur[0], 0)).value_or(run_status::failed);
  if (!legal(from, r.status)) {
    refuse(out, r.run_id, "", 0,
           "run " + r.run_id + ": " + to_string(from) + " -> " + to_string(r.status)
             + " is not a legal transition",
           now);
    return;
  }
  // A write that leaves the run unfinished is its owner's sign of life.
  exec("UPDATE runs SET status = $2, failure = $3, reason = $4, host = $5, pid = $6, "
       "started_at = $7, finished_at = $8, updated_at = $9, owner = $10, "
       "heartbeat_at = COALESCE($11, heartbeat_at), epoch = $12, state = $13 WHERE run_id = $1",
       {text(r.run_id), text(to_string(r.status)), code(r.failure), text(r.reason), text(r.host),
        num(r.pid), opt_ts(r.started_at), opt_ts(r.finished_at), ts(now), text(r.owner),
        is_terminal(r.status) ? value{} : ts(now), num(r.epoch),
        text(r.state.empty() ? "{}" : r.state)});
  ++out.written;
}

void sql_store::write_job(const job_row& r, apply_result& out, caf::timestamp now) {
  if (!fenced(out, r.run_id, r.job, 0, r.epoch, run_epoch(r.run_id),
              "job " + r.run_id + "/" + r.job, now))
    return;
  auto cur = exec("SELECT status FROM jobs WHERE run_id = $1 AND job = $2" + lock_clause(),
                  {text(r.run_id), text(r.job)});
  if (cur.empty()) {
    exec(std::string("INSERT INTO jobs (") + job_columns
           + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
         {text(r.run_id), text(r.job), num(r.position), text(to_string(r.status)),
          num(r.attempts), code(r.failure), text(r.error), ts(now)});
    ++out.written;
    return;
  }
  auto from = parse_stage_status(str(cur[0], 0)).value_or(stage_status::failed);
  if (!legal_job(from, r.status)) {
    refuse(out, r.run_id, r.job, 0,
           "job " + r.run_id + "/" + r.job + ": " + to_string(from) + " -> "
             + to_string(r.status) + " is not a legal transition",
           now);
    return;
  }
  exec("UPDATE jobs SET status = $3, attempts = $4, failure = $5, error = $6, updated_at = $7 "
       "WHERE run_id = $1 AND job = $2",
       {text(r.run_id), text(r.job), text(to_string(r.status)), num(r.attempts), code(r.failure),
        text(r.error), ts(now)});
  ++out.written;
}

void sql_store::write_attempt(const attempt_row& r, apply_result& out, caf::timestamp now) {
  if (!fenced(out, r.run_id, r.job, r.attempt, r.epoch, run_epoch(r.run_id),
              "attempt " + r.run_id + "/" + r.job + "#" + std::to_string(r.attempt), now))
    return;
  auto cur = exec("SELECT status FROM attempts WHERE run_id = $1 AND job = $2 AND attempt = $3"
                    + lock_clause(),
                  {text(r.run_id), text(r.job), num(r.attempt)});
  params p{text(r.run_id),  text(r.job),          num(r.attempt),        text(to_string(r.status)),
           text(r.strategy), code(r.failure),     text(r.error),         opt_num(r.exit_code),
           opt_num(r.signal), opt_num(r.http_status), num(r.pid),        opt_ts(r.started_at),
           opt_ts(r.finished_at), num(r.duration_ms), text(r.stats.empty() ? "{}" : r.stats),
           ts(now), text(r.cgroup), num(r.epoch)};
  if (cur.empty()) {
    exec("INSERT INTO attempts (run_id, job, attempt, status, strategy, failure, error, "
         "exit_code, signal, http_status, pid, started_at, finished_at, duration_ms, stats, "
         "updated_at, cgroup, epoch) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
         "$13, $14, $15, $16, $17, $18)",
         p);
    ++out.written;
    return;
  }
  auto from = parse_stage_status(str(cur[0], 0)).value_or(stage_status::failed);
  if (!legal_attempt(from, r.status)) {
    refuse(out, r.run_id, r.job, r.attempt,
           "attempt " + r.run_id + "/" + r.job + "#" + std::to_string(r.attempt) + ": "
             + to_string(from) + " -> " + to_string(r.status) + " is not a legal transition",
           now);
    return;
  }
  exec("UPDATE attempts SET status = $4, strategy = $5, failure = $6, error = $7, "
       "exit_code = $8, signal = $9, http_status = $10, pid = $11, started_at = $12, "
       "finished_at = $13, duration_ms = $14, stats = $15, updated_at = $16, cgroup = $17, "
       "epoch = $18 WHERE run_id = $1 AND job = $2 AND attempt = $3",
       p);
  ++out.written;
}

void sql_store::write_event(const event_row& e) {
  exec("INSERT INTO events (ts, run_id, job, attempt, level, message, meta) "
       "VALUES ($1, $2, $3, $4, $5, $6, $7)",
       {ts(e.ts), text(e.run_id), text(e.job), num(e.attempt), text(to_string(e.level)),
        text(e.message), text(e.meta.empty() ? "{}" : e.meta)});
}

namespace {

// "$k, $k+1, ..." for `n` values from parameter `first`.
std::string placeholders(size_t first, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i)
    out += (i == 0 ? "$" : ", $") + std::to_string(first + i);
  return out;
}

// Chunks of at most `size` (statements stay under any parameter limit).
template <class T, class F>
void in_chunks(const std::vector<T>& items, size_t size, F f) {
  for (size_t i = 0; i < items.size(); i += size)
    f(std::vector<T>(items.begin() + static_cast<long>(i),
                     items.begin() + static_cast<long>(std::min(items.size(), i + size))));
}

// The last accepted row per key, in the order the keys first came.
template <class K, class V>
struct last_per_key {
  std::map<K, V> rows;
  std::vector<K> order;
  void put(const K& k, const V& v) {
    auto [it, fresh] = rows.insert_or_assign(k, v);
    (void) it;
    if (fresh)
      order.push_back(k);
  }
  std::vector<V> list() const {
    std::vector<V> out;
    for (auto& k : order)
      out.push_back(rows.at(k));
    return out;
  }
};

} // namespace

// Row by row: SQLite's statements cost no round trip, and its prepared
// statements are reused (multi-row statements of varying sizes are not).
caf::expected<apply_result> sql_store::apply_rows(const store_batch& batch) {
  return guarded("apply", [&] {
    return in_transaction([&] {
      apply_result out;
      auto now = caf::make_timestamp();
      for (auto& r : batch.runs)
        write_run(r, out, now);
      for (auto& r : batch.jobs)
        write_job(r, out, now);
      for (auto& r : batch.attempts)
        write_attempt(r, out, now);
      for (auto& e : batch.events) {
        write_event(e);
        ++out.written;
      }
      return out;
    });
  });
}

// PostgreSQL: one transaction, and as few statements as the batch allows: the current
// state of every run, job and attempt the batch touches is read with one
// query per table, the rows are checked against it in memory in batch order
// (fencing, legal transitions, later rows seeing earlier ones), and what is
// accepted is written with multi-row upserts. A commit of N transitions used
// to cost two or three statements per row (one network round trip each on
// PostgreSQL).
caf::expected<apply_result> sql_store::apply(const store_batch& batch) {
  if (!batched_writes())
    return apply_rows(batch);
  return guarded("apply", [&] {
    return in_transaction([&] {
      apply_result out;
      auto now = caf::make_timestamp();
      // "HEAD VALUES (...), (...) TAIL", `width` parameters a row.
      auto write_rows = [&](const std::string& head, const auto& rows, size_t width,
                            auto params_of, const std::string& tail) {
        using row_t = typename std::decay_t<decltype(rows)>::value_type;
        in_chunks(rows, std::max<size_t>(1, 900 / width), [&](const std::vector<row_t>& chunk) {
          params p;
          std::string values;
          for (auto& r : chunk) {
            values += (values.empty() ? "(" : ", (") + placeholders(p.size() + 1, width) + ")";
            auto more = params_of(r);
            p.insert(p.end(), more.begin(), more.end());
          }
          exec(head + " VALUES " + values + tail, p);
        });
      };
      // -- the state now ------------------------------------------------------
      std::vector<std::string> run_ids;
      {
        std::set<std::string> seen;
        auto add = [&](const std::string& id) {
          if (seen.insert(id).second)
            run_ids.push_back(id);
        };
        for (auto& r : batch.runs)
          add(r.run_id);
        for (auto& r : batch.jobs)
          add(r.run_id);
        for (auto& r : batch.attempts)
          add(r.run_id);
      }
      struct run_state {
        run_status status;
        int64_t epoch;
      };
      std::map<std::string, run_state> runs;
      std::map<std::pair<std::string, std::string>, stage_status> jobs;
      std::map<std::tuple<std::string, std::string, int32_t>, stage_status> attempts;
      in_chunks(run_ids, 500, [&](const std::vector<std::string>& ids) {
        params p;
        for (auto& id : ids)
          p.push_back(text(id));
        auto in = "(" + placeholders(1, ids.size()) + ")";
        for (auto& r : exec("SELECT run_id, status, epoch FROM runs WHERE run_id IN " + in
                              + lock_clause(),
                            p))
          runs[str(r, 0)] = {parse_run_status(str(r, 1)).value_or(run_status::failed),
                             int_of(r, 2)};
      });
      // Only the keys the batch names (a run may have many jobs).
      {
        std::vector<std::pair<std::string, std::string>> keys;
        std::set<std::pair<std::string, std::string>> seen;
        for (auto& r : batch.jobs)
          if (seen.emplace(r.run_id, r.job).second)
            keys.emplace_back(r.run_id, r.job);
        in_chunks(keys, 200, [&](const std::vector<std::pair<std::string, std::string>>& chunk) {
          params p;
          std::string values;
          for (auto& [run, job] : chunk) {
            values += (values.empty() ? "(" : ", (") + placeholders(p.size() + 1, 2) + ")";
            p.push_back(text(run));
            p.push_back(text(job));
          }
          for (auto& r : exec("SELECT run_id, job, status FROM jobs WHERE (run_id, job) IN "
                              "(VALUES " + values + ")" + lock_clause(),
                              p))
            jobs[{str(r, 0), str(r, 1)}] =
              parse_stage_status(str(r, 2)).value_or(stage_status::failed);
        });
      }
      {
        std::vector<std::tuple<std::string, std::string, int32_t>> keys;
        std::set<std::tuple<std::string, std::string, int32_t>> seen;
        for (auto& r : batch.attempts)
          if (seen.emplace(r.run_id, r.job, r.attempt).second)
            keys.emplace_back(r.run_id, r.job, r.attempt);
        in_chunks(keys, 200,
                  [&](const std::vector<std::tuple<std::string, std::string, int32_t>>& chunk) {
          params p;
          std::string values;
          for (auto& [run, job, n] : chunk) {
            auto k = p.size() + 1;
            values += std::string(values.empty() ? "(" : ", (") + "$" + std::to_string(k) + ", $"
                      + std::to_string(k + 1) + ", CAST($" + std::to_string(k + 2)
                      + " AS INTEGER))";
            p.push_back(text(run));
            p.push_back(text(job));
            p.push_back(num(n));
          }
          for (auto& r : exec("SELECT run_id, job, attempt, status FROM attempts WHERE "
                              "(run_id, job, attempt) IN (VALUES " + values + ")" + lock_clause(),
                              p))
            attempts[{str(r, 0), str(r, 1), static_cast<int32_t>(int_of(r, 2))}] =
              parse_stage_status(str(r, 3)).value_or(stage_status::failed);
        });
      }
      std::vector<event_row> refusals;
      auto refused = [&](const std::string& run_id, const std::string& job, int32_t attempt,
                         std::string what) {
        std::fprintf(stderr, "troupe: store: refused: %s\n", what.c_str());
        event_row ev;
        ev.ts = now;
        ev.run_id = run_id;
        ev.job = job;
        ev.attempt = attempt;
        ev.level = event_level::warn;
        ev.message = "refused: " + what;
        refusals.push_back(ev);
        out.refused.push_back(std::move(what));
        out.refused_runs.push_back(run_id);
      };
      auto stale = [&](const std::string& run_id, const std::string& job, int32_t attempt,
                       int64_t epoch, const std::string& what) {
        auto it = runs.find(run_id);
        if (it == runs.end() || epoch == it->second.epoch)
          return false;
        refused(run_id, job, attempt,
                what + ": written at epoch " + std::to_string(epoch) + ", the run is at epoch "
                  + std::to_string(it->second.epoch)
                  + " (a stale owner; the run was taken over)");
        return true;
      };
      // -- runs, in batch order ---------------------------------------------------
      struct run_write {
        run_row row;       // insert-only columns from the first, the rest from the last
        bool insert = false;
        bool beat = false;  // some accepted row left it unfinished: heartbeat_at = now
      };
      std::map<std::string, run_write> run_writes;
      std::vector<std::string> run_order;
      for (auto& r : batch.runs) {
        auto it = runs.find(r.run_id);
        if (it != runs.end()) {
          auto stored = it->second.epoch;
          if (r.epoch != stored && r.epoch != stored + 1) {
            stale(r.run_id, "", 0, r.epoch, "run " + r.run_id);
            continue;
          }
          if (!legal(it->second.status, r.status)) {
            refused(r.run_id, "", 0,
                    "run " + r.run_id + ": " + to_string(it->second.status) + " -> "
                      + to_string(r.status) + " is not a legal transition");
            continue;
          }
        }
        auto w = run_writes.find(r.run_id);
        if (w == run_writes.end()) {
          run_order.push_back(r.run_id);
          run_writes[r.run_id] = {r, it == runs.end(), !is_terminal(r.status)};
        } else {
          auto& m = w->second.row;
          m.status = r.status;
          m.failure = r.failure;
          m.reason = r.reason;
          m.host = r.host;
          m.pid = r.pid;
          m.started_at = r.started_at;
          m.finished_at = r.finished_at;
          m.owner = r.owner;
          m.epoch = r.epoch;
          w->second.beat = w->second.beat || !is_terminal(r.status);
        }
        runs[r.run_id] = {r.status, r.epoch};
        ++out.written;
      }
      std::vector<run_write> run_list;
      for (auto& id : run_order)
        run_list.push_back(run_writes[id]);
      write_rows(
        std::string("INSERT INTO runs (") + run_columns + ")", run_list, 22,
        [&](const run_write& w) {
          const auto& r = w.row;
          return params{text(r.run_id), text(r.pipeline), text(r.pipeline_file), text(r.run_dir),
                        text(to_string(r.status)), code(r.failure), text(r.reason), text(r.host),
                        num(r.pid), ts(r.created_at), opt_ts(r.started_at), opt_ts(r.finished_at),
                        ts(now), text(r.owner), w.beat ? ts(now) : value{}, num(r.epoch),
                        r.schedule_id.empty() ? value{} : text(r.schedule_id),
                        opt_ts(r.scheduled_for), text(r.params.empty() ? "{}" : r.params),
                        text(r.state.empty() ? "{}" : r.state), text(r.pipeline_sha256),
                        text(r.launched_by)};
        },
        " ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, "
        "failure = excluded.failure, reason = excluded.reason, host = excluded.host, "
        "pid = excluded.pid, started_at = excluded.started_at, "
        "finished_at = excluded.finished_at, updated_at = excluded.updated_at, "
        "owner = excluded.owner, heartbeat_at = COALESCE(excluded.heartbeat_at, runs.heartbeat_at), "
        "epoch = excluded.epoch, state = excluded.state");
      // -- jobs -----------------------------------------------------------------------
      last_per_key<std::pair<std::string, std::string>, job_row> job_writes;
      for (auto& r : batch.jobs) {
        if (stale(r.run_id, r.job, 0, r.epoch, "job " + r.run_id + "/" + r.job))
          continue;
        auto key = std::make_pair(r.run_id, r.job);
        auto it = jobs.find(key);
        if (it != jobs.end() && !legal_job(it->second, r.status)) {
          refused(r.run_id, r.job, 0,
                  "job " + r.run_id + "/" + r.job + ": " + to_string(it->second) + " -> "
                    + to_string(r.status) + " is not a legal transition");
          continue;
        }
        jobs[key] = r.status;
        job_writes.put(key, r);
        ++out.written;
      }
      write_rows(
        std::string("INSERT INTO jobs (") + job_columns + ")", job_writes.list(), 8,
        [&](const job_row& r) {
          return params{text(r.run_id), text(r.job), num(r.position), text(to_string(r.status)),
                        num(r.attempts), code(r.failure), text(r.error), ts(now)};
        },
        " ON CONFLICT (run_id, job) DO UPDATE SET status = excluded.status, "
        "attempts = excluded.attempts, failure = excluded.failure, error = excluded.error, "
        "updated_at = excluded.updated_at");
      // -- attempts -------------------------------------------------------------------
      last_per_key<std::tuple<std::string, std::string, int32_t>, attempt_row> attempt_writes;
      for (auto& r : batch.attempts) {
        if (stale(r.run_id, r.job, r.attempt, r.epoch,
                  "attempt " + r.run_id + "/" + r.job + "#" + std::to_string(r.attempt)))
          continue;
        std::tuple<std::string, std::string, int32_t> key{r.run_id, r.job, r.attempt};
        auto it = attempts.find(key);
        if (it != attempts.end() && !legal_attempt(it->second, r.status)) {
          refused(r.run_id, r.job, r.attempt,
                  "attempt " + r.run_id + "/" + r.job + "#" + std::to_string(r.attempt) + ": "
                    + to_string(it->second) + " -> " + to_string(r.status)
                    + " is not a legal transition");
          continue;
        }
        attempts[key] = r.status;
        attempt_writes.put(key, r);
        ++out.written;
      }
      write_rows(
        "INSERT INTO attempts (run_id, job, attempt, status, strategy, failure, error, "
        "exit_code, signal, http_status, pid, started_at, finished_at, duration_ms, stats, "
        "updated_at, cgroup, epoch)",
        attempt_writes.list(), 18,
        [&](const attempt_row& r) {
          return params{text(r.run_id), text(r.job), num(r.attempt), text(to_string(r.status)),
                        text(r.strategy), code(r.failure), text(r.error), opt_num(r.exit_code),
                        opt_num(r.signal), opt_num(r.http_status), num(r.pid),
                        opt_ts(r.started_at), opt_ts(r.finished_at), num(r.duration_ms),
                        text(r.stats.empty() ? "{}" : r.stats), ts(now), text(r.cgroup),
                        num(r.epoch)};
        },
        " ON CONFLICT (run_id, job, attempt) DO UPDATE SET status = excluded.status, "
        "strategy = excluded.strategy, failure = excluded.failure, error = excluded.error, "
        "exit_code = excluded.exit_code, signal = excluded.signal, "
        "http_status = excluded.http_status, pid = excluded.pid, "
        "started_at = excluded.started_at, finished_at = excluded.finished_at, "
        "duration_ms = excluded.duration_ms, stats = excluded.stats, "
        "updated_at = excluded.updated_at, cgroup = excluded.cgroup, epoch = excluded.epoch");
      // -- events: refusals (of runs that exist), then the batch's ----------------
      std::vector<event_row> events;
      for (auto& e : refusals)
        if (runs.count(e.run_id) != 0)
          events.push_back(e);
      events.insert(events.end(), batch.events.begin(), batch.events.end());
      out.written += static_cast<int32_t>(batch.events.size());
      write_rows("INSERT INTO events (ts, run_id, job, attempt, level, message, meta)", events, 7,
                 [&](const event_row& e) {
                   return params{ts(e.ts), text(e.run_id), text(e.job), num(e.attempt),
                                 text(to_string(e.level)), text(e.message),
                                 text(e.meta.empty() ? "{}" : e.meta)};
                 },
                 "");
      return out;
    });
  });
}

caf::error sql_store::heartbeat(const std::string& owner, caf::timestamp now) {
  auto done = guarded("heartbeat", [&] {
    return in_transaction([&] {
      exec("INSERT INTO owners (owner, heartbeat_at) VALUES ($1, $2) "
           "ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
           {text(owner), ts(now)});
      return true;
    });
  });
  return done ? caf::error{} : done.error();
}

caf::expected<std::vector<run_row>> sql_store::runs(const run_filter& f) {
  return guarded("runs", [&] {
    std::string sql = std::string("SELECT ") + run_select + " FROM runs WHERE 1 = 1";
    params p;
    if (f.status) {
      p.push_back(to_string(*f.status));
      sql += " AND status = $" + std::to_string(p.size());
    }
    if (!f.pipeline.empty()) {
      p.push_back(f.pipeline);
      sql += " AND pipeline = $" + std::to_string(p.size());
    }
    if (!f.after.empty()) {
      // Newest first: the runs after the cursor are the older ones.
      auto at = exec("SELECT created_at FROM runs WHERE run_id = $1", {text(f.after)});
      if (at.empty())
        return std::vector<run_row>{};
      p.push_back(str(at[0], 0));
      auto n = std::to_string(p.size());
      p.push_back(f.after);
      auto m = std::to_string(p.size());
      sql += " AND (created_at < $" + n + " OR (created_at = $" + n + " AND run_id < $" + m
             + "))";
    }
    p.push_back(std::to_string(f.limit));
    sql += " ORDER BY created_at DESC, run_id DESC LIMIT $" + std::to_string(p.size());
    return map_rows<run_row>(exec(sql, p), run_of);
  });
}

caf::expected<std::vector<run_row>> sql_store::runs_by_prefix(const std::string& prefix,
                                                              int32_t limit) {
  return guarded("runs_by_prefix", [&] {
    // A range, not LIKE: ids hold no wildcards, and this uses the primary key.
    return map_rows<run_row>(
      exec(std::string("SELECT ") + run_select
             + " FROM runs WHERE run_id >= $1 AND run_id < $2 ORDER BY run_id LIMIT $3",
           {text(prefix), text(prefix + "\x7f"), num(limit)}),
      run_of);
  });
}

caf::expected<std::vector<run_row>> sql_store::unfinished_runs() {
  return guarded("unfinished_runs", [&] {
    return map_rows<run_row>(
      exec(std::string("SELECT ") + run_select
             + " FROM runs WHERE status IN ('queued', 'running') ORDER BY created_at",
           {}),
      run_of);
  });
}

caf::expected<std::vector<job_row>> sql_store::jobs(const std::string& run_id) {
  return guarded("jobs", [&] {
    return map_rows<job_row>(exec(std::string("SELECT ") + job_columns
                                    + " FROM jobs WHERE run_id = $1 ORDER BY position",
                                  {text(run_id)}),
                             job_of);
  });
}

caf::expected<std::vector<attempt_row>> sql_store::attempts(const std::string& run_id) {
  return guarded("attempts", [&] {
    return map_rows<attempt_row>(
      exec(std::string("SELECT ") + attempt_columns
             + " FROM attempts a JOIN jobs j ON j.run_id = a.run_id AND j.job = a.job "
               "WHERE a.run_id = $1 ORDER BY j.position, a.attempt",
           {text(run_id)}),
      attempt_of);
  });
}

void sql_store::write_schedule_event(const schedule_event_row& e) {
  exec("INSERT INTO schedule_events (ts, schedule_id, coordinator, kind, scheduled_for, run_id, "
       "message) VALUES ($1, $2, $3, $4, $5, $6, $7)",
       {ts(e.ts), text(e.schedule_id), text(e.coordinator), text(e.kind), opt_ts(e.scheduled_for),
        text(e.run_id), text(e.message)});
}

caf::expected<std::vector<event_row>> sql_store::events_after(const std::string& run_id,
                                                              int64_t after, int32_t limit) {
  return guarded("events_after", [&] {
    return map_rows<event_row>(exec(std::string("SELECT ") + event_columns
                                      + " FROM events WHERE run_id = $1 AND id > $2 "
                                        "ORDER BY id LIMIT $3",
                                    {text(run_id), num(after), num(limit)}),
                               event_of);
  });
}

caf::expected<std::vector<std::pair<std::string, int64_t>>> sql_store::count_runs() {
  return guarded("count_runs", [&] {
    std::vector<std::pair<std::string, int64_t>> out;
    for (auto& r : exec("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status", {}))
      out.emplace_back(str(r, 0), int_of(r, 1));
    return out;
  });
}

caf::expected<bool> sql_store::take_over_run(const std::string& run_id,
                                             const std::string& owner_was, int64_t epoch_was,
                                             const std::string& owner, caf::timestamp now) {
  return guarded("take_over_run", [&] {
    return in_transaction([&] {
      return !exec("UPDATE runs SET owner = $1, epoch = $2, heartbeat_at = $3, updated_at = $3 "
                   "WHERE run_id = $4 AND owner = $5 AND epoch = $6 "
                   "AND status IN ('queued', 'running') RETURNING run_id",
                   {text(owner), num(epoch_was + 1), ts(now), text(run_id), text(owner_was),
                    num(epoch_was)})
                .empty();
    });
  });
}

caf::expected<bool> sql_store::reopen_run(const std::string& run_id, int64_t epoch_was,
                                          const std::string& owner, const std::string& host,
                                          int32_t pid, const std::vector<std::string>& jobs,
                                          const event_row& event, caf::timestamp now) {
  return guarded("reopen_run", [&] {
    return in_transaction([&] {
      bool reopened =
        !exec("UPDATE runs SET status = 'running', failure = NULL, reason = '', "
              "finished_at = NULL, owner = $1, host = $2, pid = $3, epoch = $4, "
              "heartbeat_at = $5, updated_at = $5, cancel_requested_at = NULL "
              "WHERE run_id = $6 AND epoch = $7 AND status NOT IN ('queued', 'running') "
              "RETURNING run_id",
              {text(owner), text(host), num(pid), num(epoch_was + 1), ts(now), text(run_id),
               num(epoch_was)})
           .empty();
      if (!reopened)
        return false;
      for (auto& job : jobs)
        exec("UPDATE jobs SET status = 'pending', failure = NULL, error = '', updated_at = $1 "
             "WHERE run_id = $2 AND job = $3",
             {ts(now), text(run_id), text(job)});
      write_event(event);
      return true;
    });
  });
}

caf::expected<bool> sql_store::request_cancel(const std::string& run_id, caf::timestamp now) {
  return guarded("request_cancel", [&] {
    return in_transaction([&] {
      return !exec("UPDATE runs SET cancel_requested_at = COALESCE(cancel_requested_at, $1) "
                   "WHERE run_id = $2 AND status IN ('queued', 'running') RETURNING run_id",
                   {ts(now), text(run_id)})
                .empty();
    });
  });
}

caf::expected<std::vector<std::string>> sql_store::cancel_requests(const std::string& owner) {
  return guarded("cancel_requests", [&] {
    std::vector<std::string> out;
    for (auto& r : exec("SELECT run_id FROM runs WHERE owner = $1 AND cancel_requested_at IS NOT "
                        "NULL AND status IN ('queued', 'running')",
                        {text(owner)}))
      out.push_back(str(r, 0));
    return out;
  });
}

caf::error sql_store::create_schedule(const schedule_row& s) {
  auto done = guarded("create_schedule", [&] {
    return in_transaction([&] {
      exec(std::string("INSERT INTO schedules (") + schedule_columns
             + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
           {text(s.id), text(s.pipeline), text(s.kind), text(s.spec), ts(s.anchor),
            text(s.overlap), text(s.catch_up), num(s.enabled ? 1 : 0), num(s.priority),
            text(s.options), opt_ts(s.next_run_at), text(""), value{}, text(s.last_run_id),
            ts(s.created_at), ts(s.updated_at)});
      return true;
    });
  });
  return done ? caf::error{} : std::move(done.error());
}

caf::expected<std::vector<schedule_row>> sql_store::schedules() {
  return guarded("schedules", [&] {
    return map_rows<schedule_row>(
      exec(std::string("SELECT ") + schedule_columns + " FROM schedules ORDER BY created_at, id",
           {}),
      schedule_of);
  });
}

caf::expected<std::optional<schedule_row>> sql_store::find_schedule(const std::string& id) {
  return guarded("find_schedule", [&] {
    auto rows =
      exec(std::string("SELECT ") + schedule_columns + " FROM schedules WHERE id = $1", {text(id)});
    return rows.empty() ? std::optional<schedule_row>{} : schedule_of(rows[0]);
  });
}

caf::expected<bool> sql_store::update_schedule(const schedule_row& s) {
  return guarded("update_schedule", [&] {
    return in_transaction([&] {
      return !exec("UPDATE schedules SET pipeline = $2, kind = $3, spec = $4, anchor = $5, "
                   "overlap = $6, catch_up = $7, enabled = $8, priority = $9, options = $10, "
                   "next_run_at = $11, updated_at = $12 WHERE id = $1 RETURNING id",
                   {text(s.id), text(s.pipeline), text(s.kind), text(s.spec), ts(s.anchor),
                    text(s.overlap), text(s.catch_up), num(s.enabled ? 1 : 0), num(s.priority),
                    text(s.options), opt_ts(s.next_run_at), ts(s.updated_at)})
                .empty();
    });
  });
}

caf::expected<bool> sql_store::delete_schedule(const std::string& id) {
  return guarded("delete_schedule", [&] {
    return in_transaction([&] {
      return !exec("DELETE FROM schedules WHERE id = $1 RETURNING id", {text(id)}).empty();
    });
  });
}

caf::expected<std::vector<claimed_schedule>>
sql_store::claim_due_schedules(const std::string& coordinator, caf::timestamp now,
                               caf::timestamp until, int32_t limit) {
  return guarded("claim_due_schedules", [&] {
    return in_transaction([&] {
      std::vector<claimed_schedule> out;
      // Due rows whose claim is free or expired; a row another coordinator
      // is claiming right now is passed over (it will be claimed by it).
      auto due = exec(std::string("SELECT ") + schedule_columns
                        + " FROM schedules WHERE enabled = 1 AND next_run_at IS NOT NULL "
                          "AND next_run_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) "
                          "ORDER BY next_run_at LIMIT $2"
                        + skip_locked_clause(),
                      {ts(now), num(limit)});
      for (auto& r : due) {
        auto s = schedule_of(r);
        // The condition again, in the update: whoever updates first wins.
        auto won = exec("UPDATE schedules SET claimed_by = $1, claimed_until = $2 WHERE id = $3 "
                        "AND (claimed_until IS NULL OR claimed_until < $4) RETURNING id",
                        {text(coordinator), ts(until), text(s.id), ts(now)});
        if (won.empty())
          continue;
        claimed_schedule c;
        c.taken_from = s.claimed_by != coordinator ? s.claimed_by : std::string{};
        s.claimed_by = coordinator;
        s.claimed_until = until;
        schedule_event_row ev;
        ev.ts = now;
        ev.schedule_id = s.id;
        ev.coordinator = coordinator;
        ev.kind = c.taken_from.empty() ? "claimed" : "taken_over";
        ev.scheduled_for = s.next_run_at;
        ev.message = c.taken_from.empty()
                       ? "claimed until " + iso8601(until)
                       : "took over the expired claim of " + c.taken_from + "; claimed until "
                           + iso8601(until);
        write_schedule_event(ev);
        c.row = std::move(s);
        out.push_back(std::move(c));
      }
      return out;
    });
  });
}

caf::expected<claim_outcome>
sql_store::finish_schedule_claim(const std::string& id, const std::string& coordinator,
                                 const caf::optional<caf::timestamp>& next_run_at,
                                 const std::vector<run_row>& launched,
                                 const std::vector<schedule_event_row>& events) {
  return guarded("finish_schedule_claim", [&] {
    return in_transaction([&] {
      claim_outcome out;
      auto now = caf::make_timestamp();
      // Still ours? (A claim that expired may have been taken over meanwhile.)
      auto mine = exec("SELECT claimed_until FROM schedules WHERE id = $1 AND claimed_by = $2"
                         + lock_clause(),
                       {text(id), text(coordinator)});
      if (mine.empty() || str(mine[0], 0) < iso8601(now))
        return out;
      out.held = true;
      apply_result ignored;
      std::string last;
      for (auto& r : launched) {
        if (!exec("SELECT 1 FROM runs WHERE schedule_id = $1 AND scheduled_for = $2",
                  {text(r.schedule_id), opt_ts(r.scheduled_for)})
               .empty())
          continue;  // that tick was launched already
        write_run(r, ignored, now);
        out.inserted.push_back(r.run_id);
        last = r.run_id;
      }
      for (auto& e : events)
        write_schedule_event(e);
      exec("UPDATE schedules SET next_run_at = $2, claimed_by = '', claimed_until = NULL, "
           "last_run_id = CASE WHEN $3 = '' THEN last_run_id ELSE $3 END, updated_at = $4 "
           "WHERE id = $1",
           {text(id), opt_ts(next_run_at), text(last), ts(now)});
      return out;
    });
  });
}

caf::error sql_store::add_schedule_events(const std::vector<schedule_event_row>& events) {
  auto done = guarded("add_schedule_events", [&] {
    return in_transaction([&] {
      for (auto& e : events)
        write_schedule_event(e);
      return true;
    });
  });
  return done ? caf::error{} : std::move(done.error());
}

caf::expected<std::vector<schedule_event_row>>
sql_store::schedule_events(const std::string& id, int64_t after, int32_t limit) {
  return guarded("schedule_events", [&] {
    return map_rows<schedule_event_row>(
      exec(std::string("SELECT ") + schedule_event_columns
             + " FROM schedule_events WHERE schedule_id = $1 AND id > $2 ORDER BY id LIMIT $3",
           {text(id), num(after), num(limit)}),
      schedule_event_of);
  });
}

caf::expected<std::vector<run_row>> sql_store::active_runs_of(const std::string& schedule_id) {
  return guarded("active_runs_of", [&] {
    return map_rows<run_row>(exec(std::string("SELECT ") + run_select
                                    + " FROM runs WHERE schedule_id = $1 "
                                      "AND status IN ('queued', 'running') ORDER BY created_at",
                                  {text(schedule_id)}),
                             run_of);
  });
}

caf::expected<std::vector<event_row>> sql_store::events(const std::string& run_id,
                                                        event_level min_level) {
  return guarded("events", [&] {
    std::string levels = min_level == event_level::info   ? "('info', 'warn', 'error')"
                         : min_level == event_level::warn ? "('warn', 'error')"
                                                          : "('error')";
    return map_rows<event_row>(exec(std::string("SELECT ") + event_columns
                                      + " FROM events WHERE run_id = $1 AND level IN "
                                      + levels + " ORDER BY id",
                                    {text(run_id)}),
                               event_of);
  });
}

namespace {

constexpr const char* gpu_lease_columns =
  "id, node, holder, state, gpus, exclusive, count, memory_bytes, priority, ttl_ms, "
  "requested_at, granted_at, expires_at, released_at, end_reason, version";

gpu_lease_row gpu_lease_of(const row& r) {
  gpu_lease_row x;
  x.id = str(r, 0);
  x.node = str(r, 1);
  x.holder = str(r, 2);
  x.state = str(r, 3);
  x.gpus = str(r, 4);
  x.exclusive = int_of(r, 5) != 0;
  x.count = static_cast<int32_t>(int_of(r, 6));
  x.memory_bytes = int_of(r, 7);
  x.priority = static_cast<int32_t>(int_of(r, 8));
  x.ttl_ms = int_of(r, 9);
  x.requested_at = ts_of(r, 10);
  x.granted_at = opt_ts_of(r, 11);
  x.expires_at = opt_ts_of(r, 12);
  x.released_at = opt_ts_of(r, 13);
  x.end_reason = str(r, 14);
  x.version = int_of(r, 15);
  return x;
}

} // namespace

caf::expected<bool> sql_store::put_gpu_lease(const gpu_lease_row& l) {
  return guarded("put_gpu_lease", [&] {
    return in_transaction([&] {
      params v{text(l.id),           text(l.node),         text(l.holder),
               text(l.state),        text(l.gpus),         num(l.exclusive ? 1 : 0),
               num(l.count),         num(l.memory_bytes),  num(l.priority),
               num(l.ttl_ms),        ts(l.requested_at),   opt_ts(l.granted_at),
               opt_ts(l.expires_at), opt_ts(l.released_at), text(l.end_reason),
               num(l.version + 1)};
      if (l.version == 0) {
        if (!exec("SELECT 1 FROM gpu_leases WHERE id = $1", {text(l.id)}).empty())
          return false;
        exec(std::string("INSERT INTO gpu_leases (") + gpu_lease_columns
               + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
             v);
        return true;
      }
      v.push_back(num(l.version));
      return !exec("UPDATE gpu_leases SET node = $2, holder = $3, state = $4, gpus = $5, "
                   "exclusive = $6, count = $7, memory_bytes = $8, priority = $9, ttl_ms = $10, "
                   "requested_at = $11, granted_at = $12, expires_at = $13, released_at = $14, "
                   "end_reason = $15, version = $16 WHERE id = $1 AND version = $17 RETURNING id",
                   v)
                .empty();
    });
  });
}

caf::expected<std::vector<gpu_lease_row>> sql_store::live_gpu_leases(const std::string& node) {
  return guarded("live_gpu_leases", [&] {
    std::vector<gpu_lease_row> out;
    for (auto& r : exec(std::string("SELECT ") + gpu_lease_columns
                          + " FROM gpu_leases WHERE node = $1 AND state IN ('queued', 'active', "
                            "'releasing') ORDER BY requested_at, id",
                        {text(node)}))
      out.push_back(gpu_lease_of(r));
    return out;
  });
}

caf::expected<int64_t> sql_store::add_gpu_event(const gpu_event_row& e) {
  return guarded("add_gpu_event", [&] {
    auto r = exec("INSERT INTO gpu_events (ts, node, kind, lease_id, holder, message) "
                  "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                  {ts(e.ts), text(e.node), text(e.kind), text(e.lease_id), text(e.holder),
                   text(e.message)});
    return r.empty() ? int64_t{0} : int_of(r[0], 0);
  });
}

caf::expected<std::vector<gpu_event_row>>
sql_store::gpu_events(const std::string& node, int64_t after, int32_t limit) {
  return guarded("gpu_events", [&] {
    std::vector<gpu_event_row> out;
    for (auto& r : exec("SELECT id, ts, node, kind, lease_id, holder, message FROM gpu_events "
                        "WHERE node = $1 AND id > $2 ORDER BY id LIMIT $3",
                        {text(node), num(after), num(limit)})) {
      gpu_event_row e;
      e.id = int_of(r, 0);
      e.ts = ts_of(r, 1);
      e.node = str(r, 2);
      e.kind = str(r, 3);
      e.lease_id = str(r, 4);
      e.holder = str(r, 5);
      e.message = str(r, 6);
      out.push_back(std::move(e));
    }
    return out;
  });
}

} // namespace troupe::sql
