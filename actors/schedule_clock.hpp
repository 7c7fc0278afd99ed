// schedule_clock: when a schedule's runs are due, with no CAF and no clock of
// its own (`now` is an argument), so that the coordinator's schedule claims
// stay thin and tests can walk time by table.
//
//   once      at `at`
//   interval  every `every` from `anchor`: anchor, anchor + every, ...
//   cron      cron_schedule (actors/cron.hpp), UTC
//
// `next_run_at` is the first tick not yet handled. At `now`, every tick in
// [next_run_at, now] is due. A due tick older than `grace` was missed (every
// coordinator was down); `catch_up` says what happens to missed ticks:
//   none  skipped (each one an event)
//   one   the latest missed tick is launched, older ones skipped
//   all   every missed tick is launched (at most `max_catch_up`, the oldest
//         beyond that skipped)
// A due tick within `grace` is always launched.
#pragma once

#include "actors/cron.hpp"

#include <caf/timestamp.hpp>

#include <optional>
#include <string>
#include <vector>

namespace troupe {

enum class schedule_kind { once, interval, cron };
enum class catch_up_policy { none, one, all };

struct schedule_timing {
  schedule_kind kind = schedule_kind::interval;
  caf::timestamp at;             // once
  caf::timestamp anchor;         // interval
  caf::timespan every{0};        // interval (> 0)
  cron_schedule cron;            // cron
  catch_up_policy catch_up = catch_up_policy::one;
  caf::timespan grace = std::chrono::seconds(60);
  size_t max_catch_up = 100;
};

struct schedule_decision {
  std::vector<caf::timestamp> launch;   // due ticks to launch, oldest first
  std::vector<caf::timestamp> skipped;  // missed ticks not launched, oldest first
  std::optional<caf::timestamp> next_run_at;  // the first tick after these; none: done (once)
};

/// The first tick strictly after `after` (for a new schedule: after its
/// creation time minus a nanosecond, so that a tick at creation counts).
std::optional<caf::timestamp> next_tick(const schedule_timing& t, caf::timestamp after);

/// What to do at `now` for a schedule whose first unhandled tick is
/// `next_run_at`.
schedule_decision decide(const schedule_timing& t, caf::timestamp next_run_at,
                         caf::timestamp now);

} // namespace troupe
