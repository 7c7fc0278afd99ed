// job_worker: runs one stage's process tree (see messages/job_worker.hpp for
// its interface and lifecycle). Event-based: the process adapter's thread
// does the waiting, reaping and fsyncing and reports back by message.
#pragma once

#include "messages/job_worker.hpp"

#include <caf/fwd.hpp>

#include <memory>

namespace troupe {

class process_runner;

/// `listener` (may be null) hears (spawned_atom, stage, pid) once the leader
/// runs, so that it can sample the tree.
job_worker_actor spawn_job_worker(caf::actor_system& sys,
                                  std::shared_ptr<process_runner> runner,
                                  job_listener_actor listener);

} // namespace troupe
