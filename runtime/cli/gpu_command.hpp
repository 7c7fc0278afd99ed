// troupe gpu info|leases|lease|release|policy|events: the node's GPU broker
// through a coordinator's API (GET/POST /gpu/*; docs/gpu.md).
#pragma once

#include "runtime/api_client.hpp"

#include <string>

namespace troupe {

struct gpu_options : client_flags {
  std::string action;  // info | leases | lease | release | policy | events
  bool json = false;
  // lease
  std::string holder;
  int gpus = 0;
  std::string memory;  // a size: 8Gi
  std::string ttl;     // a duration; "0": none
  int priority = 0;
  bool wait = false;
  // release
  std::string id;
  // policy (empty: unchanged)
  std::string safe_mode;  // on | off
  std::string default_ttl, reserve, release_grace;
  int max_leases_per_holder = -1;
  // events
  int64_t after = 0;
};

int gpu_command(const gpu_options& o);

} // namespace troupe
