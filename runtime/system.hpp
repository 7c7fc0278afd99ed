// Actor-system setup shared by the CLI and the tests: type and error
// registration, and the scheduler settings a mostly idle runner wants.
#pragma once

#include <caf/fwd.hpp>

namespace troupe {

/// Registers both type-ID blocks and the "troupe" error renderer.
void register_types(caf::actor_system_config& cfg);

/// Two scheduler threads with the tuned work-stealing sleep settings from
/// ../shared/docs/caf-0.17-field-guide.md (idle CPU ~1 % instead of ~12 %).
void configure_scheduler(caf::actor_system_config& cfg);

} // namespace troupe
