// node: the local node (see messages/node.hpp). It owns what every attempt on
// this host shares (the process runner, the HTTP client, where Chromium is,
// the host's capacity) and spawns a job_worker or http_worker per attempt,
// when the attempt's resources fit beside everything else running there.
#pragma once

#include "messages/gpu_broker.hpp"
#include "messages/node.hpp"

#include <caf/fwd.hpp>

#include <functional>
#include <memory>
#include <string>

namespace troupe {

class process_runner;
class http_client;

/// Makes the job_worker of an exec attempt (tests inject their own).
using worker_factory =
  std::function<job_worker_actor(caf::actor_system&, job_listener_actor listener)>;

/// What a node's workers share; built once per process.
struct node_services {
  std::shared_ptr<process_runner> runner;
  std::shared_ptr<http_client> http;  // may be null: http stages then fail `network`
  std::string chromium;               // empty: the browser strategy is unavailable
  int32_t slots = 0;                  // CPU slots over all runs (0: no limit)
  int64_t memory_bytes = 0;           // memory its attempts may ask for in all (0: no limit)
  worker_factory exec_worker{};       // empty: spawn_job_worker
  gpu_broker_actor gpus{};            // the node's GPU broker; null: GPU stages fall back
  resource_sampler_actor sampler{};   // the node's sampler: runs ask the node for samples
  bool gpu_memory_kill = false;       // gpu_memory_enforce: kill (else warn)
};

node_actor spawn_node(caf::actor_system& sys, node_services services);

/// Why `want` does not fit beside `used` in a node of `slots` and
/// `memory` (0: no limit), or "" when it does: "2 of 2 slots in use".
std::string capacity_shortfall(const resource_request& want, int32_t used_slots,
                               int64_t used_memory, int32_t slots, int64_t memory);

} // namespace troupe
