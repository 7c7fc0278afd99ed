// The GPU broker's settings as a host gives them: the environment (for
// `troupe run` and the coordinator alike) over a base (the coordinator's
// config file, `gpu:`).
#pragma once

#include "actors/gpu_lease_book.hpp"
#include "messages/resource_sampler.hpp"
#include "runtime/pipeline.hpp"

#include <optional>
#include <string>

namespace troupe {

/// `base` with TROUPE_GPU_SAFE_MODE=0|1, TROUPE_GPU_DEFAULT_TTL (a duration,
/// 0: none), TROUPE_GPU_RESERVE (a size) and TROUPE_GPU_MAX_LEASES_PER_HOLDER
/// applied; a bad value is named in `error`.
std::optional<gpu_policy> gpu_policy_from_environment(gpu_policy base, std::string& error);

/// What in `p` asks more of this host's GPUs than they have (more GPUs than
/// there are, gpu_memory above every GPU's total), naming the stage and its
/// line; "" when all fits, or when the host has no GPUs (then the stages'
/// gpu_fallback decides).
std::string gpu_fit_problem(const pipeline_def& p, const std::vector<gpu_figures>& gpus);

} // namespace troupe
