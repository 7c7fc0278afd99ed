// gpu_source: reads the node's GPUs. The NVML implementation loads
// libnvidia-ml with dlopen at run time, so a host without NVIDIA's driver
// still works: it just has no GPUs. NVML's types never leave adapters/sampling.
#pragma once

#include "messages/resource_sampler.hpp"

#include <memory>
#include <string>
#include <vector>

namespace troupe {

class gpu_source {
public:
  virtual ~gpu_source() = default;
  /// Current figures, one per device; empty when there are none.
  virtual std::vector<gpu_figures> read() = 0;
  /// Why there are no GPUs ("libnvidia-ml.so.1 not found"), or empty.
  virtual std::string status() const = 0;
  /// The driver's version as NVML gives it, or "".
  virtual std::string driver_version() const {
    return {};
  }
};

/// Opens NVML from `library` (default: $TROUPE_NVML_LIBRARY, else
/// libnvidia-ml.so.1). Never fails: without NVML the source reads nothing.
std::shared_ptr<gpu_source> open_nvml(std::string library = {});

} // namespace troupe
