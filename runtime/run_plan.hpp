// make_run_plan: a pipeline, the options it is run with and the facts of
// this start (run id, folder, time, host, environment), made into the
// run_plan a run_supervisor takes. Pure: no files, no processes, no clock
// (everything it needs is an argument), so that `troupe run` and the
// coordinator build runs the same way and tests can look at every field.
#pragma once

#include "actors/run_supervisor.hpp"
#include "runtime/pipeline.hpp"

#include <map>
#include <set>
#include <string>

namespace troupe {

struct run_start {
  std::string run_id;
  std::string run_dir;           // absolute
  caf::timestamp started_at;     // the run's creation (a resumed run keeps its own)
  int32_t pid = 0;               // the process that drives it
  std::string owner;             // its owner token (runtime/liveness.hpp)
  host_info host;
  std::string output_dir;        // as given (--output)
  std::set<std::string> enabled; // optional stages to run
  caf::timespan sample_interval{0};
  caf::timespan grace{0};
  std::map<std::string, std::string> environment;  // the base environment of every stage
  bool resumed = false;          // the run exists already (status running)
  int64_t epoch = 1;             // the store epoch it writes at (a resumed run: the taken-over one)
  std::map<std::string, std::string> params;  // resolved (resolve_params): every declared one
  std::string launched_by = "manual";  // manual (troupe run), api, schedule, trigger
};

/// The plan: the record with every stage pending, and one job_spec per
/// stage, whose environment is `start.environment`, then defaults.env, then
/// the stage's env, then TROUPE_RUN_ID, TROUPE_RUN_DIR, TROUPE_STAGE and
/// TROUPE_PIPELINE_DIR, and for a matrix instance TROUPE_MATRIX_<KEY>
/// (TROUPE_ATTEMPT is added per attempt). Templates (runtime/template.hpp)
/// in run, shell, env, cwd and http are substituted: ${params.*} from
/// start.params, ${env.*} from start.environment, ${run.id}, ${run.dir},
/// ${stage.name} and ${matrix.*}.
run_plan make_run_plan(const pipeline_def& p, const run_start& start);

} // namespace troupe
