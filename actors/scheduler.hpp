// scheduler: see messages/scheduler.hpp. Its decisions are run_queue's.
#pragma once

#include "messages/artifact_writer.hpp"
#include "messages/node.hpp"
#include "messages/resource_sampler.hpp"
#include "messages/run_supervisor.hpp"
#include "messages/scheduler.hpp"
#include "messages/store.hpp"

#include <caf/fwd.hpp>

#include <map>
#include <memory>
#include <string>

namespace troupe {

class io_pool;

struct scheduler_deps {
  node_actor node;  // runs, samples (its sampler) and GPUs (its broker) of the host
  std::shared_ptr<io_pool> pool;  // run folders' writes
  store_actor store;              // may be null: no database
  progress_listener_actor listener;  // hears every run's events; may be null
  int32_t max_running = 0;           // 0: no global limit
  std::map<std::string, int32_t> pipeline_limits;  // pipeline name -> max_running
};

scheduler_actor spawn_scheduler(caf::actor_system& sys, scheduler_deps deps);

} // namespace troupe
