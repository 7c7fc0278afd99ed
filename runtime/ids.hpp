// Run ids: time-ordered UUIDs (version 7): sortable as text by creation time,
// unique across hosts without coordination.
#pragma once

#include <caf/timestamp.hpp>

#include <string>

namespace troupe {

std::string make_run_id(caf::timestamp now);

} // namespace troupe
