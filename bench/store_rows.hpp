// The rows the store benchmarks write: a run, and one stage transition as
// the run_supervisor persists it (a job row, an attempt row, an event).
#pragma once

#include "messages/store.hpp"

#include <caf/timestamp.hpp>

#include <string>

namespace troupe::bench {

inline store_batch transition(const std::string& run, int k) {
  store_batch b;
  job_row j;
  j.run_id = run;
  j.job = "stage-" + std::to_string(k);
  j.position = k;
  j.status = stage_status::running;
  j.attempts = 1;
  b.jobs.push_back(j);
  attempt_row a;
  a.run_id = run;
  a.job = j.job;
  a.status = stage_status::running;
  a.strategy = "exec";
  a.pid = 1000 + k;
  a.started_at = caf::make_timestamp();
  b.attempts.push_back(a);
  event_row e;
  e.ts = caf::make_timestamp();
  e.run_id = run;
  e.job = j.job;
  e.attempt = 1;
  e.message = "attempt 1 of 1 started (exec)";
  b.events.push_back(e);
  return b;
}

inline store_batch new_run(const std::string& id) {
  store_batch b;
  run_row r;
  r.run_id = id;
  r.pipeline = "bench";
  r.pipeline_file = "/bench.yaml";
  r.run_dir = "/tmp";
  r.status = run_status::running;
  r.host = "bench";
  r.created_at = caf::make_timestamp();
  b.runs.push_back(r);
  return b;
}

} // namespace troupe::bench
