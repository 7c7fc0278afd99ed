// Actor-system setup shared by the CLI and the tests: type and error
// registration, and the scheduler settings a mostly idle runner wants.
#pragma once

#include <caf/fwd.hpp>

#include <csignal>

namespace troupe {

/// Registers both type-ID blocks and the "troupe" error renderer.
void register_types(caf::actor_system_config& cfg);

/// Two scheduler threads with the tuned work-stealing sleep settings from
/// ../shared/docs/caf-0.17-field-guide.md (idle CPU ~1 % instead of ~12 %).
void configure_scheduler(caf::actor_system_config& cfg);

/// SIGINT, SIGTERM and SIGHUP: the signals that stop (or detach) troupe's
/// commands, blocked in every thread at start and taken with sigwait.
inline sigset_t stop_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

} // namespace troupe
