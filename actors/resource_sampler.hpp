// resource_sampler: snapshots on request and at an interval (see
// messages/resource_sampler.hpp). Spawned detached: reading /proc and NVML
// takes milliseconds and must not hold a scheduler thread.
#pragma once

#include "messages/resource_sampler.hpp"

#include <caf/fwd.hpp>

#include <memory>

namespace troupe {

class gpu_source;

resource_sampler_actor spawn_resource_sampler(caf::actor_system& sys,
                                              std::shared_ptr<gpu_source> gpus);

} // namespace troupe
