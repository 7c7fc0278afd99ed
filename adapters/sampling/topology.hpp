// topology: what machine this is (hostname, kernel, CPU model, hwloc's cores,
// hardware threads and NUMA nodes, memory), read once per run.
#pragma once

#include "messages/run.hpp"

namespace troupe {

host_info read_host_info();

} // namespace troupe
