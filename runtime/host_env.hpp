// What a run takes from the process that starts it: its environment, and
// where Chromium is. Shared by `troupe run` and the coordinator.
#pragma once

#include <map>
#include <string>

namespace troupe {

/// This process's environment, as a map.
std::map<std::string, std::string> own_environment();

/// Chromium for the browser strategy: $TROUPE_CHROMIUM, else the first of
/// Debian's and upstream's names in PATH; empty when there is none.
std::string find_chromium();

} // namespace troupe
