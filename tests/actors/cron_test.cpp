// cron: parsing and the next due time, by table; month ends, leap years,
// day-of-month OR day-of-week, aliases, and every rejection by its words.
#include "actors/cron.hpp"

#include "messages/errors.hpp"
#include "messages/json.hpp"

#include <gtest/gtest.h>

using namespace troupe;

namespace {

caf::timestamp at(const std::string& iso) {
  auto t = parse_iso8601(iso);
  EXPECT_TRUE(t) << iso;
  return t ? *t : caf::timestamp{};
}

std::string next(const std::string& expr, const std::string& after) {
  auto s = parse_cron(expr);
  if (!s)
    return "error: " + describe(s.error());
  auto t = next_cron_time(*s, at(after));
  return t ? iso8601(*t) : std::string("never");
}

} // namespace

TEST(CronTest, NextTimesByTable) {
  struct row {
    const char* expr;
    const char* after;
    const char* expect;
  };
  const row table[] = {
    {"* * * * *", "2026-11-24T10:02:30.000Z", "2026-11-24T10:03:00.000Z"},
    {"* * * * *", "2026-11-24T10:02:00.000Z", "2026-11-24T10:03:00.000Z"},  // strictly after
    {"*/5 * * * *", "2026-11-24T10:02:00.000Z", "2026-11-24T10:05:00.000Z"},
    {"*/5 * * * *", "2026-11-24T23:57:00.000Z", "2026-11-25T00:00:00.000Z"},
    {"5/15 * * * *", "2026-11-24T10:21:00.000Z", "2026-11-24T10:35:00.000Z"},
    {"0 9-17/4 * * *", "2026-11-24T14:00:00.000Z", "2026-11-24T17:00:00.000Z"},
    {"30 2 * * *", "2026-11-24T02:30:00.000Z", "2026-11-25T02:30:00.000Z"},
    // Month ends: the 31st skips the months without one.
    {"0 0 31 * *", "2026-01-31T00:00:00.000Z", "2026-03-31T00:00:00.000Z"},
    {"0 0 31 * *", "2026-03-31T00:00:00.000Z", "2026-05-31T00:00:00.000Z"},
    {"0 0 30 * *", "2026-01-30T12:00:00.000Z", "2026-03-30T00:00:00.000Z"},
    // Leap years: the 29th of February, every four years (2100 is not one).
    {"0 0 29 2 *", "2025-03-01T00:00:00.000Z", "2028-02-29T00:00:00.000Z"},
    {"0 0 29 2 *", "2028-02-29T00:00:00.000Z", "2032-02-29T00:00:00.000Z"},
    {"59 23 28 2 *", "2027-02-28T23:59:00.000Z", "2028-02-28T23:59:00.000Z"},
    {"0 0 29 2 *", "2097-01-01T00:00:00.000Z", "2104-02-29T00:00:00.000Z"},  // not 2100
    {"0 0 30 2 *", "2026-01-01T00:00:00.000Z", "never"},
    // Year end.
    {"0 0 1 1 *", "2026-12-31T23:59:00.000Z", "2027-01-01T00:00:00.000Z"},
    // Days of the week: 2026-11-24 is a Tuesday; 0 and 7 are Sunday.
    {"0 12 * * 1", "2026-11-24T00:00:00.000Z", "2026-11-30T12:00:00.000Z"},
    {"0 12 * * 0", "2026-11-24T00:00:00.000Z", "2026-11-29T12:00:00.000Z"},
    {"0 12 * * 7", "2026-11-24T00:00:00.000Z", "2026-11-29T12:00:00.000Z"},
    {"0 12 * * MON-FRI", "2026-11-27T13:00:00.000Z", "2026-11-30T12:00:00.000Z"},
    {"0 0 * JUN *", "2026-11-24T00:00:00.000Z", "2027-06-01T00:00:00.000Z"},
    // Both day fields restricted: either matches (the 13th, or a Friday).
    {"0 0 13 * 5", "2026-11-24T00:00:00.000Z", "2026-11-27T00:00:00.000Z"},
    {"0 0 13 * 5", "2026-11-28T00:00:00.000Z", "2026-12-04T00:00:00.000Z"},
    {"0 0 1,15 * *", "2026-11-24T00:00:00.000Z", "2026-12-01T00:00:00.000Z"},
    // Aliases.
    {"@hourly", "2026-11-24T10:00:00.000Z", "2026-11-24T11:00:00.000Z"},
    {"@daily", "2026-11-24T10:00:00.000Z", "2026-11-25T00:00:00.000Z"},
    {"@midnight", "2026-11-24T10:00:00.000Z", "2026-11-25T00:00:00.000Z"},
    {"@weekly", "2026-11-24T10:00:00.000Z", "2026-11-29T00:00:00.000Z"},
    {"@monthly", "2026-12-15T10:00:00.000Z", "2027-01-01T00:00:00.000Z"},
    {"@yearly", "2026-11-24T10:00:00.000Z", "2027-01-01T00:00:00.000Z"},
  };
  for (auto& r : table)
    EXPECT_EQ(next(r.expr, r.after), r.expect) << r.expr << " after " << r.after;
}

TEST(CronTest, RejectionsNameTheFieldAndTheProblem) {
  struct row {
    const char* expr;
    const char* says;
  };
  const row table[] = {
    {"61 * * * *", "minute: '61' is not in 0-59"},
    {"* 24 * * *", "hour: '24' is not in 0-23"},
    {"* * 0 * *", "day-of-month: '0' is not in 1-31"},
    {"* * * 13 *", "month: '13' is not in 1-12"},
    {"* * * * 8", "day-of-week: '8' is not in 0-6"},
    {"* * * *", "needs 5 fields (minute hour day-of-month month day-of-week), not 4"},
    {"* * * * * *", "not 6"},
    {"*/0 * * * *", "minute: '0' is not a step"},
    {"5-1 * * * *", "minute: '5-1' runs backwards"},
    {"x * * * *", "minute: 'x' is not a value or range"},
    {"* * * FOO *", "month: 'FOO' is not a value or range"},
    {"@sometimes", "unknown alias"},
    {"", "needs 5 fields"},
  };
  for (auto& r : table) {
    auto s = parse_cron(r.expr);
    ASSERT_FALSE(s) << r.expr;
    auto text = describe(s.error());
    EXPECT_NE(text.find(r.says), std::string::npos) << r.expr << ": " << text;
    EXPECT_EQ(text.rfind(std::string("cron '") + r.expr + "'", 0), 0u) << text;
  }
}
