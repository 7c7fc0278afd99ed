#include "adapters/store/schema.hpp"

namespace troupe::sql {

std::vector<migration> schema_migrations(dialect d) {
  // Times are ISO-8601 UTC text (2026-11-23T09:14:03.127Z): readable in any
  // client and ordered as text. Statuses and codes are the names in
  // messages/status.hpp. meta and stats hold JSON objects.
  std::string event_id = d == dialect::sqlite ? "id INTEGER PRIMARY KEY AUTOINCREMENT"
                                              : "id BIGSERIAL PRIMARY KEY";
  return {
    {1,
     "runs, jobs, attempts, events",
     {
       "CREATE TABLE runs ("
       " run_id TEXT PRIMARY KEY,"
       " pipeline TEXT NOT NULL,"
       " pipeline_file TEXT NOT NULL,"
       " run_dir TEXT NOT NULL,"
       " status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed',"
       "   'timed_out', 'cancelled')),"
       " failure TEXT,"
       " reason TEXT NOT NULL DEFAULT '',"
       " host TEXT NOT NULL,"
       " pid INTEGER NOT NULL,"
       " created_at TEXT NOT NULL,"
       " started_at TEXT,"
       " finished_at TEXT,"
       " updated_at TEXT NOT NULL)",
       "CREATE INDEX runs_by_status ON runs (status, created_at)",
       "CREATE INDEX runs_by_created ON runs (created_at)",
       "CREATE TABLE jobs ("
       " run_id TEXT NOT NULL REFERENCES runs (run_id),"
       " job TEXT NOT NULL,"
       " position INTEGER NOT NULL,"
       " status TEXT NOT NULL,"
       " attempts INTEGER NOT NULL,"
       " failure TEXT,"
       " error TEXT NOT NULL DEFAULT '',"
       " updated_at TEXT NOT NULL,"
       " PRIMARY KEY (run_id, job))",
       "CREATE TABLE attempts ("
       " run_id TEXT NOT NULL,"
       " job TEXT NOT NULL,"
       " attempt INTEGER NOT NULL CHECK (attempt >= 1),"
       " status TEXT NOT NULL,"
       " strategy TEXT NOT NULL,"
       " failure TEXT,"
       " error TEXT NOT NULL DEFAULT '',"
       " exit_code INTEGER,"
       " signal INTEGER,"
       " http_status INTEGER,"
       " pid INTEGER NOT NULL DEFAULT 0,"
       " started_at TEXT,"
       " finished_at TEXT,"
       " duration_ms BIGINT NOT NULL DEFAULT 0,"
       " stats TEXT NOT NULL DEFAULT '{}',"
       " updated_at TEXT NOT NULL,"
       " PRIMARY KEY (run_id, job, attempt),"
       " FOREIGN KEY (run_id, job) REFERENCES jobs (run_id, job))",
       "CREATE TABLE events (" + event_id + ","
       " ts TEXT NOT NULL,"
       " run_id TEXT NOT NULL REFERENCES runs (run_id),"
       " job TEXT NOT NULL DEFAULT '',"
       " attempt INTEGER NOT NULL DEFAULT 0,"
       " level TEXT NOT NULL CHECK (level IN ('info', 'warn', 'error')),"
       " message TEXT NOT NULL,"
       " meta TEXT NOT NULL DEFAULT '{}')",
       "CREATE INDEX events_by_run ON events (run_id, id)",
     }},
    {2,
     "run owners and heartbeats; attempts' job cgroups",
     {
       // owner: "host:pid:start-ticks" of the process driving the run;
       // heartbeat_at: refreshed by it every few seconds while the run is
       // unfinished. A run whose owner is gone (or silent) is reconciled.
       "ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
       "ALTER TABLE runs ADD COLUMN heartbeat_at TEXT",
       // The job cgroup an attempt ran in: what recovery kills what is left of.
       "ALTER TABLE attempts ADD COLUMN cgroup TEXT NOT NULL DEFAULT ''",
     }},
    {3,
     "epochs: fencing of a run's writers",
     {
       // A run's epoch grows by one each time someone takes the run over
       // (recovery, later a coordinator's claim). Every row a writer sends
       // carries the epoch it holds; a row from an older epoch is refused.
       "ALTER TABLE runs ADD COLUMN epoch BIGINT NOT NULL DEFAULT 1",
       "ALTER TABLE attempts ADD COLUMN epoch BIGINT NOT NULL DEFAULT 1",
     }},
    {4,
     "schedules, their claims and decisions; runs launched by a schedule",
     {
       // A run launched for a schedule's tick names both; the pair is unique,
       // so that no tick is launched twice, even by a bug (NULLs, the runs of
       // no schedule, are distinct in both databases).
       "ALTER TABLE runs ADD COLUMN schedule_id TEXT",
       "ALTER TABLE runs ADD COLUMN scheduled_for TEXT",
       "CREATE UNIQUE INDEX runs_by_schedule_tick ON runs (schedule_id, scheduled_for)",
       "CREATE TABLE schedules ("
       " id TEXT PRIMARY KEY,"
       " pipeline TEXT NOT NULL,"
       " kind TEXT NOT NULL CHECK (kind IN ('once', 'interval', 'cron')),"
       " spec TEXT NOT NULL,"
       " anchor TEXT NOT NULL,"
       " overlap TEXT NOT NULL CHECK (overlap IN ('allow', 'forbid', 'replace')),"
       " catch_up TEXT NOT NULL CHECK (catch_up IN ('none', 'one', 'all')),"
       " enabled INTEGER NOT NULL,"
       " priority INTEGER NOT NULL DEFAULT 0,"
       " options TEXT NOT NULL DEFAULT '{}',"
       // The first tick not yet handled (NULL: a once schedule that is done);
       // a coordinator claims a due row until claimed_until, launches, moves
       // next_run_at on in the transaction that inserts the runs, and
       // releases. A claim whose coordinator died expires; another takes it.
       " next_run_at TEXT,"
       " claimed_by TEXT NOT NULL DEFAULT '',"
       " claimed_until TEXT,"
       " last_run_id TEXT NOT NULL DEFAULT '',"
       " created_at TEXT NOT NULL,"
       " updated_at TEXT NOT NULL)",
       "CREATE INDEX schedules_due ON schedules (enabled, next_run_at)",
       "CREATE TABLE schedule_events (" + event_id + ","
       " ts TEXT NOT NULL,"
       " schedule_id TEXT NOT NULL,"
       " coordinator TEXT NOT NULL,"
       " kind TEXT NOT NULL,"
       " scheduled_for TEXT,"
       " run_id TEXT NOT NULL DEFAULT '',"
       " message TEXT NOT NULL DEFAULT '')",
       "CREATE INDEX schedule_events_by_schedule ON schedule_events (schedule_id, id)",
     }},
    {5,
     "cancel requests for runs another coordinator holds",
     {
       // Set by whoever is asked to cancel a run it does not hold; the
       // run's owner looks for its runs' requests every second and cancels.
       "ALTER TABLE runs ADD COLUMN cancel_requested_at TEXT",
     }},
    {6,
     "the parameter values a run was given (a JSON object)",
     {
       "ALTER TABLE runs ADD COLUMN params TEXT NOT NULL DEFAULT '{}'",
     }},
    {7,
     "one heartbeat per owner instead of one per run",
     {
       // A live owner (a troupe run or coordinator) writes one row every
       // couple of seconds, however many runs it holds: an unfinished run's
       // heartbeat_at reads as the later of its own and its owner's. (One
       // UPDATE per run made 100,000 queued runs cost 100,000 statements
       // every 2 s on PostgreSQL, and the writer stalled behind them.)
       "CREATE TABLE owners (owner TEXT PRIMARY KEY, heartbeat_at TEXT NOT NULL)",
     }},
    {8,
     "state probes (state_before, state_after, delta, probes); the pipeline file's hash",
     {
       "ALTER TABLE runs ADD COLUMN state TEXT NOT NULL DEFAULT '{}'",
       "ALTER TABLE runs ADD COLUMN pipeline_sha256 TEXT NOT NULL DEFAULT ''",
     }},
    {9,
     "what launched a run: manual (troupe run), api, schedule or trigger",
     {
       "ALTER TABLE runs ADD COLUMN launched_by TEXT NOT NULL DEFAULT ''",
     }},
    {10,
     "gpu_leases: the GPU broker's leases, written with compare-and-set",
     {
       "CREATE TABLE gpu_leases (id TEXT PRIMARY KEY, node TEXT NOT NULL, holder TEXT NOT NULL, "
       "state TEXT NOT NULL, gpus TEXT NOT NULL, exclusive INTEGER NOT NULL, "
       "count INTEGER NOT NULL, memory_bytes BIGINT NOT NULL, priority INTEGER NOT NULL, "
       "ttl_ms BIGINT NOT NULL, requested_at TEXT NOT NULL, granted_at TEXT, expires_at TEXT, "
       "released_at TEXT, end_reason TEXT NOT NULL DEFAULT '', version BIGINT NOT NULL)",
       "CREATE INDEX gpu_leases_by_node ON gpu_leases (node, state)",
     }},
    {11,
     "gpu_events: policy changes, over-use, expiries and grace frees of a node's GPU broker",
     {
       "CREATE TABLE gpu_events (" + event_id + ", ts TEXT NOT NULL, node TEXT NOT NULL, "
       "kind TEXT NOT NULL, lease_id TEXT NOT NULL DEFAULT '', holder TEXT NOT NULL DEFAULT '', "
       "message TEXT NOT NULL DEFAULT '')",
       "CREATE INDEX gpu_events_by_node ON gpu_events (node, id)",
     }},
  };
}

} // namespace troupe::sql
