// cron: five-field schedules (minute hour day-of-month month day-of-week),
// in UTC, and the next time one is due. A plain class with no CAF in it:
// the coordinator's schedules use it, tests drive it by table. No cron
// library is packaged for Debian, hence this one.
//
// Fields: `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`;
// months also JAN-DEC, days of the week SUN-SAT (0 and 7 are Sunday).
// Aliases: @hourly, @daily (= @midnight), @weekly, @monthly, @yearly
// (= @annually). As in Vixie cron, when both day fields are restricted a
// day matches if either does.
#pragma once

#include <caf/expected.hpp>
#include <caf/timestamp.hpp>

#include <bitset>
#include <optional>
#include <string>

namespace troupe {

struct cron_schedule {
  std::bitset<60> minutes;
  std::bitset<24> hours;
  std::bitset<32> days;      // 1..31
  std::bitset<13> months;    // 1..12
  std::bitset<7> weekdays;   // 0..6, Sunday = 0
  bool any_day = true;       // day-of-month was `*`
  bool any_weekday = true;   // day-of-week was `*`
  std::string text;          // as given
};

/// errc::bad_input naming the field and the problem ("cron '61 * * * *':
/// minute: 61 is not in 0-59").
caf::expected<cron_schedule> parse_cron(const std::string& text);

/// The first minute strictly after `after` (UTC) that matches; nothing if
/// none does within eight years (`0 0 30 2 *`).
std::optional<caf::timestamp> next_cron_time(const cron_schedule& s, caf::timestamp after);

} // namespace troupe
