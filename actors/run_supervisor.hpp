// run_supervisor: drives one run (see messages/run_supervisor.hpp). Thin:
// the decisions are in running_order; this file translates messages.
#pragma once

#include "messages/artifact_writer.hpp"
#include "messages/job_worker.hpp"
#include "messages/resource_sampler.hpp"
#include "messages/run.hpp"
#include "messages/run_supervisor.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <memory>
#include <vector>

namespace troupe {

class process_runner;

/// Everything a run needs, built by runtime/ from a pipeline file.
struct run_plan {
  run_record record;           // all stages pending; moved into the supervisor's running_order
  std::vector<job_spec> jobs;  // one per stage, same order
  caf::timespan sample_interval{0};
};

struct run_supervisor_deps {
  std::shared_ptr<process_runner> runner;
  resource_sampler_actor sampler;
  artifact_writer_actor writer;
  caf::actor listener;  // receives progress_event messages; may be null
};

run_supervisor_actor spawn_run_supervisor(caf::actor_system& sys, run_plan plan,
                                          run_supervisor_deps deps);

} // namespace troupe
