// gpu_broker: the node's GPU authority (messages/gpu_broker.hpp). A
// detached actor (NVML calls and /proc reads of lease trees block); the
// decisions are gpu_lease_book's.
#pragma once

#include "actors/gpu_lease_book.hpp"
#include "messages/gpu_broker.hpp"

#include <caf/fwd.hpp>

#include <memory>

namespace troupe {

class gpu_source;

struct gpu_broker_config {
  gpu_policy policy;                                       // safe mode on by default
  caf::timespan verify_interval = std::chrono::seconds(1);  // NVML against the leases
  std::string store_url;  // where leases are kept across restarts ("": nowhere)
  std::string node;       // whose GPUs: the rows of this node are its own
  // Where the host-wide lock files are (adapters/sampling/gpu_host_lock.hpp):
  // the broker grants only GPUs it could lock there. "": no host lock (tests
  // of one broker in a process).
  std::string lock_dir;
  std::string owner = "troupe";  // what the lock files say holds them
};

gpu_broker_actor spawn_gpu_broker(caf::actor_system& sys, std::shared_ptr<gpu_source> gpus,
                                  gpu_broker_config cfg);

} // namespace troupe
