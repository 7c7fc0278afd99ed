#include "adapters/sampling/topology.hpp"

#include "adapters/sampling/host_sampler.hpp"

#include <hwloc.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
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

} // namespace troupe
