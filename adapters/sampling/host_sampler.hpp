// host_sampler: one snapshot of the host (CPU, memory, load, top processes,
// GPUs) and optionally of one stage's process tree, from one /proc scan.
// Stateful: CPU percentages are deltas since the previous snapshot.
#pragma once

#include "adapters/sampling/gpu_source.hpp"
#include "messages/resource_sampler.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <utility>

namespace troupe {

/// Fills mem_total_bytes and mem_used_bytes (MemTotal - MemAvailable) from
/// /proc/meminfo.
void read_memory(host_figures& h);

class host_sampler {
public:
  explicit host_sampler(std::shared_ptr<gpu_source> gpus);

  /// Reads /proc (and NVML) now. `req.pgid` 0: no process tree.
  snapshot take(const sample_request& req);

  /// The same for several requests from one pass over /proc (and one NVML
  /// read): the host figures are shared, each tree is its own. In order.
  std::vector<snapshot> take_many(const std::vector<sample_request>& reqs);

private:
  struct cpu_totals {
    uint64_t busy = 0;
    uint64_t total = 0;
  };
  static cpu_totals read_cpu_totals();

  std::shared_ptr<gpu_source> gpus_;
  cpu_totals last_cpu_;
  double last_uptime_ = 0;
  // (pid, start ticks) -> cpu ticks at the previous snapshot
  std::map<std::pair<int32_t, uint64_t>, uint64_t> last_ticks_;
};

} // namespace troupe
