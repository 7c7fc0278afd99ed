#include "runtime/node_assembly.hpp"

#include "actors/gpu_broker.hpp"
#include "actors/resource_sampler.hpp"
#include "adapters/http_client/http_client.hpp"
#include "adapters/sampling/gpu_host_lock.hpp"
#include "adapters/sampling/gpu_source.hpp"
#include "runtime/gpu_settings.hpp"
#include "runtime/host_env.hpp"

#include <caf/all.hpp>

#include <cstdlib>

namespace troupe {

std::optional<local_node> make_local_node(caf::actor_system& sys, const local_node_options& o,
                                          std::string& error) {
  auto policy = gpu_policy_from_environment(o.gpu, error);
  if (!policy)
    return std::nullopt;
  std::string enforce = std::getenv("TROUPE_GPU_MEMORY_ENFORCE") != nullptr
                          ? std::getenv("TROUPE_GPU_MEMORY_ENFORCE")
                          : o.gpu_memory_kill ? "kill" : "warn";
  if (enforce != "warn" && enforce != "kill" && !enforce.empty()) {
    error = "$TROUPE_GPU_MEMORY_ENFORCE: '" + enforce + "' is not warn or kill";
    return std::nullopt;
  }
  local_node n;
  n.nvml = o.nvml ? o.nvml : open_nvml();
  n.sampler = spawn_resource_sampler(sys, n.nvml);
  gpu_broker_config cfg;
  cfg.policy = *policy;
  cfg.store_url = o.gpu_store_url;
  cfg.node = o.node;
  cfg.lock_dir = default_gpu_lock_dir();
  cfg.owner = o.owner;
  n.gpus = spawn_gpu_broker(sys, n.nvml, cfg);
  node_services services;
  services.runner = o.runner;
  services.http = o.http ? std::make_shared<http_client>() : nullptr;
  services.chromium = find_chromium();
  services.slots = o.slots;
  services.gpus = n.gpus;
  services.gpu_memory_kill = enforce == "kill";
  services.sampler = n.sampler;
  n.node = spawn_node(sys, std::move(services));
  return n;
}

} // namespace troupe
