// topology: what machine this is (hostname, kernel, CPU model, hwloc's cores,
// hardware threads and NUMA nodes, memory), read once per run.
#pragma once

#include "messages/run.hpp"

namespace troupe {

host_info read_host_info();

/// What hwloc knows of the PCI device at `pci_bus_id` ("00000000:3B:00.0"):
/// the cores close to it ("0-15") and its NUMA node; empty and -1 when
/// hwloc does not see the device.
struct gpu_locality {
  std::string cores;
  int32_t numa_node = -1;
};
gpu_locality gpu_locality_of(const std::string& pci_bus_id);

} // namespace troupe
