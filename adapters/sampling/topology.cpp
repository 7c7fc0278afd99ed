#include "adapters/sampling/topology.hpp"

#include "adapters/sampling/host_sampler.hpp"

#include <hwloc.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace troupe {

host_info read_host_info() {
  host_info h;
  char name[256] = {0};
  if (::gethostname(name, sizeof name - 1) == 0)
    h.hostname = name;
  utsname u{};
  if (::uname(&u) == 0)
    h.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  // MemTotal from /proc, as the samples use: hwloc's figure can differ
  // (it reported 4.3 GB of a 25 GB VM here).
  host_figures mem;
  read_memory(mem);
  h.mem_total_bytes = mem.mem_total_bytes;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos)
        h.cpu_model = line.substr(line.find_first_not_of(' ', colon + 1));
      break;
    }
  }
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) == 0) {
    if (hwloc_topology_load(topo) == 0) {
      h.cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
      h.pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
      h.numa_nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    }
    hwloc_topology_destroy(topo);
  }
  return h;
}

gpu_locality gpu_locality_of(const std::string& pci_bus_id) {
  gpu_locality out;
  unsigned domain = 0, bus = 0, dev = 0, func = 0;
  if (std::sscanf(pci_bus_id.c_str(), "%x:%x:%x.%x", &domain, &bus, &dev, &func) != 4)
    return out;
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0)
    return out;
  hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  if (hwloc_topology_load(topo) == 0) {
    if (auto* pci = hwloc_get_pcidev_by_busid(topo, domain, bus, dev, func)) {
      if (auto* near = hwloc_get_non_io_ancestor_obj(topo, pci); near && near->cpuset) {
        char* list = nullptr;
        if (hwloc_bitmap_list_asprintf(&list, near->cpuset) >= 0 && list != nullptr) {
          out.cores = list;
          std::free(list);
        }
        int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
        for (int k = 0; k < n; ++k) {
          auto* numa = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, static_cast<unsigned>(k));
          if (numa && numa->cpuset && hwloc_bitmap_intersects(numa->cpuset, near->cpuset)) {
            out.numa_node = static_cast<int32_t>(numa->os_index);
            break;
          }
        }
      }
    }
  }
  hwloc_topology_destroy(topo);
  return out;
}

} // namespace troupe
