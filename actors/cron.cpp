#include "actors/cron.hpp"

#include "messages/errors.hpp"

#include <cctype>
#include <cstdint>
#include <vector>

namespace troupe {

namespace {

struct field_spec {
  const char* name;
  int lo;
  int hi;
  const char* const* names;  // names for lo, lo+1, ... or null
};

const char* const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                   "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", nullptr};
const char* const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", nullptr};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s) {
    if (ch == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  out.push_back(cur);
  return out;
}

// A number or (for months and weekdays) a name; -1 when neither.
int value_of(const std::string& s, const field_spec& f) {
  if (s.empty() || s.size() > 4)
    return -1;
  bool digits = true;
  for (char ch : s)
    digits = digits && std::isdigit(static_cast<unsigned char>(ch));
  if (digits)
    return std::stoi(s);
  if (f.names == nullptr)
    return -1;
  std::string up;
  for (char ch : s)
    up += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  for (int i = 0; f.names[i] != nullptr; ++i)
    if (up == f.names[i])
      return f.lo + i;
  return -1;
}

// Sets the values of one field in `bits`; "" or the problem.
template <size_t N>
std::string parse_field(const std::string& text, const field_spec& f, std::bitset<N>& bits,
                        int max_value) {
  for (auto& part : split(text, ',')) {
    auto slash = part.find('/');
    auto range = part.substr(0, slash);
    int step = 1;
    if (slash != std::string::npos) {
      auto s = part.substr(slash + 1);
      bool digits = !s.empty() && s.size() <= 3;
      for (char ch : s)
        digits = digits && std::isdigit(static_cast<unsigned char>(ch));
      if (!digits || std::stoi(s) == 0)
        return "'" + s + "' is not a step (a whole number from 1)";
      step = std::stoi(s);
    }
    int lo = f.lo, hi = f.hi;
    if (range != "*") {
      auto dash = range.find('-');
      lo = value_of(range.substr(0, dash), f);
      hi = dash == std::string::npos ? (slash == std::string::npos ? lo : f.hi)
                                     : value_of(range.substr(dash + 1), f);
      if (lo < 0 || hi < 0)
        return "'" + range + "' is not a value or range";
      if (lo < f.lo || hi > max_value)
        return "'" + range + "' is not in " + std::to_string(f.lo) + "-" + std::to_string(f.hi);
      if (lo > hi)
        return "'" + range + "' runs backwards";
    }
    for (int v = lo; v <= hi; v += step)
      bits.set(static_cast<size_t>(v == 7 && N == 7 ? 0 : v));
  }
  return {};
}

// A civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp + (mp < 10 ? 3 : -9);
  y += m <= 2;
}

bool day_matches(const cron_schedule& s, int64_t day) {
  int64_t y;
  unsigned m, d;
  civil_from_days(day, y, m, d);
  if (!s.months.test(m))
    return false;
  auto weekday = static_cast<size_t>(((day % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday
  bool dom = s.days.test(d);
  bool dow = s.weekdays.test(weekday);
  if (s.any_day && s.any_weekday)
    return true;
  if (s.any_day)
    return dow;
  if (s.any_weekday)
    return dom;
  return dom || dow;  // both restricted: either (Vixie cron)
}

} // namespace

caf::expected<cron_schedule> parse_cron(const std::string& text) {
  auto fail = [&](const std::string& what) {
    return caf::make_error(errc::bad_input, "cron '" + text + "': " + what);
  };
  std::string expr = text;
  if (expr == "@hourly")
    expr = "0 * * * *";
  else if (expr == "@daily" || expr == "@midnight")
    expr = "0 0 * * *";
  else if (expr == "@weekly")
    expr = "0 0 * * 0";
  else if (expr == "@monthly")
    expr = "0 0 1 * *";
  else if (expr == "@yearly" || expr == "@annually")
    expr = "0 0 1 1 *";
  else if (!expr.empty() && expr[0] == '@')
    return fail("unknown alias (use @hourly, @daily, @weekly, @monthly or @yearly)");
  if (expr.size() > 200)
    return fail("longer than 200 characters");
  std::vector<std::string> fields;
  std::string cur;
  for (char ch : expr) {
    if (ch == ' ' || ch == '\t') {
      if (!cur.empty())
        fields.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty())
    fields.push_back(cur);
  if (fields.size() != 5)
    return fail("needs 5 fields (minute hour day-of-month month day-of-week), not "
                + std::to_string(fields.size()));
  cron_schedule s;
  s.text = text;
  static const field_spec specs[] = {{"minute", 0, 59, nullptr},
                                     {"hour", 0, 23, nullptr},
                                     {"day-of-month", 1, 31, nullptr},
                                     {"month", 1, 12, month_names},
                                     {"day-of-week", 0, 6, day_names}};
  std::string err;
  if (!(err = parse_field(fields[0], specs[0], s.minutes, 59)).empty())
    return fail("minute: " + err);
  if (!(err = parse_field(fields[1], specs[1], s.hours, 23)).empty())
    return fail("hour: " + err);
  if (!(err = parse_field(fields[2], specs[2], s.days, 31)).empty())
    return fail("day-of-month: " + err);
  if (!(err = parse_field(fields[3], specs[3], s.months, 12)).empty())
    return fail("month: " + err);
  if (!(err = parse_field(fields[4], specs[4], s.weekdays, 7)).empty())
    return fail("day-of-week: " + err);
  s.any_day = fields[2] == "*";
  s.any_weekday = fields[4] == "*";
  return s;
}

std::optional<caf::timestamp> next_cron_time(const cron_schedule& s, caf::timestamp after) {
  using namespace std::chrono;
  auto mins = duration_cast<minutes>(after.time_since_epoch()).count();
  if (after.time_since_epoch() < minutes(mins))
    --mins;  // floor for times before 1970
  int64_t t = mins + 1;  // strictly after, on a whole minute
  const int64_t limit = t + int64_t{8} * 366 * 24 * 60;
  while (t < limit) {
    int64_t day = t >= 0 ? t / 1440 : (t - 1439) / 1440;
    if (!day_matches(s, day)) {
      t = (day + 1) * 1440;
      continue;
    }
    auto minute_of_day = t - day * 1440;
    auto hour = static_cast<size_t>(minute_of_day / 60);
    if (!s.hours.test(hour)) {
      t = day * 1440 + static_cast<int64_t>(hour + 1) * 60;
      continue;
    }
    if (!s.minutes.test(static_cast<size_t>(minute_of_day % 60))) {
      ++t;
      continue;
    }
    return caf::timestamp{duration_cast<caf::timestamp::duration>(minutes(t))};
  }
  return std::nullopt;
}

} // namespace troupe
