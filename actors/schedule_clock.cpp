#include "actors/schedule_clock.hpp"

namespace troupe {

std::optional<caf::timestamp> next_tick(const schedule_timing& t, caf::timestamp after) {
  switch (t.kind) {
    case schedule_kind::once:
      if (t.at > after)
        return t.at;
      return std::nullopt;
    case schedule_kind::interval: {
      if (t.every.count() <= 0)
        return std::nullopt;
      if (t.anchor > after)
        return t.anchor;
      auto n = (after - t.anchor) / t.every + 1;  // ticks up to and including `after`, plus one
      return t.anchor + n * t.every;
    }
    case schedule_kind::cron:
      return next_cron_time(t.cron, after);
  }
  return std::nullopt;
}

schedule_decision decide(const schedule_timing& t, caf::timestamp next_run_at,
                         caf::timestamp now) {
  schedule_decision d;
  std::vector<caf::timestamp> missed;
  std::optional<caf::timestamp> tick = next_run_at;
  // Walk the due ticks; a very long outage is bounded by what can be kept.
  constexpr size_t walk_limit = 100000;
  size_t walked = 0;
  while (tick && *tick <= now && walked++ < walk_limit) {
    if (now - *tick > t.grace)
      missed.push_back(*tick);
    else
      d.launch.push_back(*tick);
    tick = next_tick(t, *tick);
  }
  while (tick && *tick <= now)  // beyond the walk limit: skip ahead, unrecorded
    tick = next_tick(t, *tick);
  d.next_run_at = tick;
  switch (t.catch_up) {
    case catch_up_policy::none:
      d.skipped = missed;
      break;
    case catch_up_policy::one:
      if (!missed.empty() && d.launch.empty()) {
        d.skipped.assign(missed.begin(), missed.end() - 1);
        d.launch.insert(d.launch.begin(), missed.back());
      } else {
        d.skipped = missed;
      }
      break;
    case catch_up_policy::all: {
      auto keep = std::min(missed.size(), t.max_catch_up);
      d.skipped.assign(missed.begin(), missed.end() - static_cast<long>(keep));
      d.launch.insert(d.launch.begin(), missed.end() - static_cast<long>(keep), missed.end());
      break;
    }
  }
  return d;
}

} // namespace troupe
