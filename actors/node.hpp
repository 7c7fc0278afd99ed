// node: the local node (see messages/node.hpp). It owns what every attempt on
// this host shares (the process runner, the HTTP client, where Chromium is)
// and spawns a job_worker or http_worker per attempt.
#pragma once

#include "messages/node.hpp"

#include <caf/fwd.hpp>

#include <memory>
#include <string>

namespace troupe {

class process_runner;
class http_client;

/// What a node's workers share; built once per process.
struct node_services {
  std::shared_ptr<process_runner> runner;
  std::shared_ptr<http_client> http;  // may be null: http stages then fail `network`
  std::string chromium;               // empty: the browser strategy is unavailable
  int32_t slots = 0;                  // its capacity in stages at once (0: no limit)
};

node_actor spawn_node(caf::actor_system& sys, node_services services);

} // namespace troupe
