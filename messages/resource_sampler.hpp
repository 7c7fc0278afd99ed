// resource_sampler: host and process-tree figures, on request and at an
// interval. One per node; the structs here are also the lines of
// resource_trace.jsonl (see docs/pipelines.md).
#pragma once

#include "messages/type_ids.hpp"

#include <caf/meta/type_name.hpp>
#include <caf/optional.hpp>
#include <caf/timestamp.hpp>
#include <caf/typed_actor.hpp>
#include <caf/replies_to.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

/// Whole-host figures at one instant.
struct host_figures {
  double cpu_percent = 0;      // all cores, 0..100, since the previous sample
  int64_t mem_total_bytes = 0;
  int64_t mem_used_bytes = 0;  // MemTotal - MemAvailable
  double load1 = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, host_figures& x) {
  return f(caf::meta::type_name("troupe::host_figures"), x.cpu_percent,
           x.mem_total_bytes, x.mem_used_bytes, x.load1);
}

/// A stage's process tree: its process group, its job cgroup's members, and
/// every descendant of these (one that left the group with setpgid or
/// setsid is still counted while its parent lives, or always with a cgroup).
struct tree_figures {
  std::vector<int32_t> pids;
  int64_t rss_bytes = 0;   // sum over the tree
  double cpu_seconds = 0;  // user + system of the live members
  int64_t gpu_memory_bytes = -1;  // its processes' GPU memory (NVML); -1: no GPUs to ask
  std::vector<std::string> gpus;  // UUIDs of the GPUs its processes are on
  double gpu_util_percent = -1;   // the busiest of those GPUs' utilisation; -1: none
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tree_figures& x) {
  return f(caf::meta::type_name("troupe::tree_figures"), x.pids, x.rss_bytes,
           x.cpu_seconds, x.gpu_memory_bytes, x.gpus, x.gpu_util_percent);
}

/// A process NVML sees on a GPU (the per-process calls).
struct gpu_process {
  int32_t pid = 0;
  int64_t used_bytes = -1;  // -1: NVML does not say (some drivers, MIG)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_process& x) {
  return f(caf::meta::type_name("troupe::gpu_process"), x.pid, x.used_bytes);
}

/// One GPU as NVML reports it. The UUID is its identity everywhere; the
/// index is for display only (CUDA's order can differ: jobs get
/// CUDA_DEVICE_ORDER=PCI_BUS_ID).
struct gpu_figures {
  int32_t index = 0;
  std::string name;
  std::string uuid;
  double util_percent = 0;
  int64_t mem_total_bytes = 0;
  int64_t mem_used_bytes = 0;
  double temperature_c = 0;
  int64_t mem_free_bytes = 0;
  double power_watts = -1;        // -1: not known
  std::string mig_mode;           // enabled | disabled | unsupported
  std::string pci_bus_id;         // 00000000:3B:00.0
  std::vector<gpu_process> processes;
  std::string near_cores;         // hwloc: the cores close to it ("0-15"), "" unknown
  int32_t numa_node = -1;         // hwloc: its NUMA node, -1 unknown
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gpu_figures& x) {
  return f(caf::meta::type_name("troupe::gpu_figures"), x.index, x.name,
           x.uuid, x.util_percent, x.mem_total_bytes, x.mem_used_bytes,
           x.temperature_c, x.mem_free_bytes, x.power_watts, x.mig_mode, x.pci_bus_id,
           x.processes, x.near_cores, x.numa_node);
}

struct top_process {
  int32_t pid = 0;
  std::string name;
  int64_t rss_bytes = 0;
  double cpu_percent = 0;  // of one core, since the previous sample
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, top_process& x) {
  return f(caf::meta::type_name("troupe::top_process"), x.pid, x.name,
           x.rss_bytes, x.cpu_percent);
}

/// One line of resource_trace.jsonl.
struct snapshot {
  caf::timestamp ts;
  std::string run_id;
  std::string stage;
  std::string phase;  // before | sample | after
  host_figures host;
  caf::optional<tree_figures> process;  // none for `before`
  std::vector<gpu_figures> gpus;
  std::vector<top_process> top;  // top 5 of the host by RSS
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot& x) {
  return f(caf::meta::type_name("troupe::snapshot"), x.ts, x.run_id, x.stage,
           x.phase, x.host, x.process, x.gpus, x.top);
}

/// What to sample: `pgid` 0 means host only (the `before` phase); `cgroup`
/// is the job's cgroup on this node, when it has one. A watch is known by
/// (run_id, stage, attempt): several runs' stages are watched at once.
struct sample_request {
  std::string run_id;
  std::string stage;
  std::string phase;
  int32_t pgid = 0;
  std::string cgroup;
  int32_t attempt = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sample_request& x) {
  return f(caf::meta::type_name("troupe::sample_request"), x.run_id, x.stage,
           x.phase, x.pgid, x.cgroup, x.attempt);
}

/// interface sample_sink {
///   (sample_atom, snapshot) -> void   // a periodic sample of a watched tree
/// }
using sample_sink_actor =
  caf::typed_actor<caf::reacts_to<sample_atom, snapshot>>;

/// interface resource_sampler {
///   (snapshot_atom, sample_request) -> snapshot      // now, once
///   (watch_atom, sample_request, timespan, sample_sink_actor) -> void
///        // every `timespan`, send (sample_atom, snapshot) to the sink,
///        // until unwatched; a watch of the same (run_id, stage, attempt)
///        // replaces that one only. One /proc pass per tick serves every
///        // watch that is due.
///   (unwatch_atom, sample_request) -> void  // by (run_id, stage, attempt)
///   (tick_atom, uint64_t) -> void                     // internal timer
/// }
using resource_sampler_actor = caf::typed_actor<
  caf::replies_to<snapshot_atom, sample_request>::with<snapshot>,
  caf::reacts_to<watch_atom, sample_request, caf::timespan, sample_sink_actor>,
  caf::reacts_to<unwatch_atom, sample_request>,
  caf::reacts_to<tick_atom, uint64_t>>;

} // namespace troupe

