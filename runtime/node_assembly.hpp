// One function builds the local node and what it owns (its sampler, its
// GPU broker on NVML), for `troupe run` and `troupe coordinator` alike: a
// local node is a node, assembled once.
#pragma once

#include "actors/node.hpp"
#include "messages/gpu_broker.hpp"
#include "messages/resource_sampler.hpp"

#include <caf/fwd.hpp>

#include <memory>
#include <optional>
#include <string>

namespace troupe {

class gpu_source;
class process_runner;

struct local_node {
  node_actor node;
  resource_sampler_actor sampler;
  gpu_broker_actor gpus;
  std::shared_ptr<gpu_source> nvml;
};

struct local_node_options {
  std::shared_ptr<process_runner> runner;
  bool http = true;           // an HTTP client for http stages
  int32_t slots = 0;          // CPU slots (0: no limit)
  std::shared_ptr<gpu_source> nvml;  // null: opened here (open_nvml)
  std::string gpu_store_url;  // where the GPU broker keeps its leases ("": in memory)
  std::string node;           // the node's name in that store (its host)
  gpu_policy gpu;             // the broker's policy before TROUPE_GPU_* (safe mode on)
  bool gpu_memory_kill = false;  // before TROUPE_GPU_MEMORY_ENFORCE
  std::string owner = "troupe run";  // what this host's GPU lock files say holds them
};

/// The node, its sampler and its GPU broker (the GPU policy from
/// TROUPE_GPU_* over `o.gpu`; TROUPE_GPU_MEMORY_ENFORCE warn|kill over
/// `o.gpu_memory_kill`). The broker grants only GPUs no other broker on the
/// host owns (lock files in default_gpu_lock_dir()). A bad setting: none,
/// with `error` naming it.
std::optional<local_node> make_local_node(caf::actor_system& sys, const local_node_options& o,
                                          std::string& error);

} // namespace troupe
