// Who owns an unfinished run, and whether that owner is still there.
//
// A run's owner is the troupe process driving it, named by a token
// "host:pid:start" (start: the process's start time in clock ticks since
// boot, /proc/PID/stat field 22, so that a reused pid is not mistaken for
// it). The owner refreshes the run's heartbeat_at every couple of seconds
// through its store_writer. The owner is lost when
//   - on this host: its process is gone, a zombie, or another process now
//     has its pid (a different start time); or
//   - anywhere: its heartbeat is older than `heartbeat_ttl`.
// A zombie kept its pid and /proc/PID/comm, which is how a killed troupe
// whose parent had not reaped it was taken for alive. Coordinators' leases
// (issue 14) reuse this shape.
#pragma once

#include "messages/store.hpp"

#include <caf/timestamp.hpp>

#include <string>

namespace troupe {

/// A heartbeat older than this means the owner is lost (ten missed beats).
inline constexpr caf::timespan heartbeat_ttl = std::chrono::seconds(20);

/// This process's owner token: "host:pid:start".
std::string owner_token(const std::string& host);

/// This host's name, as runs record it.
std::string this_host();

struct owner_state {
  bool lost = false;
  std::string why;  // for people: "process 123 on vm is a zombie", ...
};

/// Whether the owner of unfinished run `r` is lost, seen from `host` at
/// `now`. A terminal run's owner is never lost (it needs none).
owner_state owner_liveness(const run_row& r, const std::string& host, caf::timestamp now,
                           caf::timespan ttl = heartbeat_ttl);

/// "running", or "running (owner lost)" for a run whose owner is lost.
std::string status_with_owner(const run_row& r, const std::string& host, caf::timestamp now);

} // namespace troupe
