// store_writer: owns a store adapter on a thread of its own (detached) and
// writes what it is sent with group commit: every batch queued while a
// commit runs goes into the next transaction together. See messages/store.hpp.
#pragma once

#include "messages/store.hpp"

#include <caf/fwd.hpp>
#include <caf/timestamp.hpp>

#include <memory>

namespace troupe {

class store;

/// How often the writer refreshes its unfinished runs' heartbeat_at.
inline constexpr caf::timespan default_heartbeat_interval = std::chrono::seconds(2);

store_actor spawn_store_writer(caf::actor_system& sys, std::unique_ptr<store> db,
                               caf::timespan heartbeat = default_heartbeat_interval);

} // namespace troupe
