#include "runtime/duration.hpp"

#include <cmath>
#include <cstdio>

namespace troupe {

namespace {

// Longest number text we read: enough for any real duration or size, and it
// bounds the work on hostile input (values come from pipeline files).
constexpr size_t max_number_chars = 32;

// A plain decimal `digits[.digits]` at the start of `text`: its value and
// length, or nullopt. No sign, exponent, hex, inf or nan: strtod would take
// those, and "1e999" or "nan" must not become a timeout.
struct decimal {
  double value;
  size_t length;
};

std::optional<decimal> leading_decimal(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9')
    ++i;
  if (i == 0)
    return std::nullopt;
  if (i < text.size() && text[i] == '.') {
    size_t frac = i + 1;
    while (frac < text.size() && text[frac] >= '0' && text[frac] <= '9')
      ++frac;
    if (frac == i + 1)
      return std::nullopt;  // "1." is not a number
    i = frac;
  }
  if (i > max_number_chars)
    return std::nullopt;
  double v = 0;
  if (std::sscanf(text.substr(0, i).c_str(), "%lf", &v) != 1 || !std::isfinite(v))
    return std::nullopt;
  return decimal{v, i};
}

} // namespace

std::optional<caf::timespan> parse_duration(const std::string& text) {
  auto num = leading_decimal(text);
  if (!num)
    return std::nullopt;
  auto unit = text.substr(num->length);
  double ns_per = 0;
  if (unit.empty() || unit == "s")
    ns_per = 1e9;
  else if (unit == "ms")
    ns_per = 1e6;
  else if (unit == "m")
    ns_per = 60e9;
  else if (unit == "h")
    ns_per = 3600e9;
  else
    return std::nullopt;
  double ns = num->value * ns_per;
  if (!std::isfinite(ns) || ns > 1e18)  // ~31 years: beyond any sane timeout
    return std::nullopt;
  return caf::timespan{static_cast<int64_t>(std::llround(ns))};
}

std::optional<int64_t> parse_size(const std::string& text) {
  auto num = leading_decimal(text);
  if (!num)
    return std::nullopt;
  auto unit = text.substr(num->length);
  if (!unit.empty() && unit[0] == ' ')
    unit.erase(0, 1);
  if (unit.empty())
    return std::nullopt;  // a unit is required: "10" meaning 10 bytes surprised users
  double mult = 0;
  char prefix = static_cast<char>(unit[0] | 0x20);  // ASCII lower case
  auto rest = unit.substr(1);
  const double binary[] = {1024.0, 1024.0 * 1024, 1024.0 * 1024 * 1024,
                           1024.0 * 1024 * 1024 * 1024};
  const double decimal_[] = {1e3, 1e6, 1e9, 1e12};
  int power = prefix == 'k' ? 0 : prefix == 'm' ? 1 : prefix == 'g' ? 2 : prefix == 't' ? 3 : -1;
  if (unit == "B" || unit == "b") {
    mult = 1;
  } else if (power < 0) {
    return std::nullopt;
  } else if (rest.empty() || rest == "i" || rest == "iB" || rest == "ib") {
    mult = binary[power];  // 512M, 512Mi, 512MiB: mebibytes (as Slurm and Docker read 512M)
  } else if (rest == "B") {
    mult = decimal_[power];  // 500MB: 500,000,000 bytes
  } else {
    return std::nullopt;
  }
  double bytes = num->value * mult;
  if (!std::isfinite(bytes) || bytes > 9e18)
    return std::nullopt;
  return static_cast<int64_t>(std::llround(bytes));
}

std::string format_duration(caf::timespan d) {
  double s = std::chrono::duration<double>(d).count();
  char buf[32];
  if (s < 1)
    std::snprintf(buf, sizeof buf, "%.0fms", s * 1000);
  else if (s < 60)
    std::snprintf(buf, sizeof buf, "%.2fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60,
                  static_cast<int>(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600,
                  (static_cast<int>(s) % 3600) / 60);
  return buf;
}

} // namespace troupe
