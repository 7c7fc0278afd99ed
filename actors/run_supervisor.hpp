// run_supervisor: drives one run (see messages/run_supervisor.hpp). Thin:
// the decisions are in running_order; this file translates messages.
#pragma once

#include "actors/retry_policy.hpp"
#include "messages/artifact_writer.hpp"
#include "messages/job_worker.hpp"
#include "messages/node.hpp"
#include "messages/resource_sampler.hpp"
#include "messages/run.hpp"
#include "messages/run_supervisor.hpp"
#include "messages/store.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace troupe {

class process_runner;
class http_client;

/// Everything a run needs, built by runtime/ from a pipeline file.
struct run_plan {
  run_record record;           // stages pending (or done, when resumed); moved into running_order
  std::vector<job_spec> jobs;  // one per stage, same order: the template of each attempt
  std::vector<job_spec> probes;  // state probes, run before the first stage and after the last
  std::vector<retry_policy> retry;  // one per stage
  supervision_spec supervision;
  caf::timespan sample_interval{0};
  std::function<double()> jitter;  // draws in [-1, 1]; null: no jitter
};

struct run_supervisor_deps {
  node_actor node;  // where the attempts run and are sampled (the node owns its sampler)
  artifact_writer_actor writer;
  store_actor store;    // may be null: no database
  progress_listener_actor listener;  // receives progress_event messages; may be null
};

run_supervisor_actor spawn_run_supervisor(caf::actor_system& sys, run_plan plan,
                                          run_supervisor_deps deps);

} // namespace troupe
