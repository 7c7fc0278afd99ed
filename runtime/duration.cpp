#include "runtime/duration.hpp"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <regex>

namespace troupe {

std::optional<caf::timespan> parse_duration(const std::string& text) {
  static const std::regex re(R"(^([0-9]+(\.[0-9]+)?)(ms|s|m|h)?$)");
  std::smatch m;
  if (!std::regex_match(text, m, re))
    return std::nullopt;
  double value = std::stod(m[1].str());
  std::string unit = m[3].str();
  double ns_per = unit == "ms" ? 1e6 : unit == "m" ? 60e9 : unit == "h" ? 3600e9 : 1e9;
  double ns = value * ns_per;
  if (!std::isfinite(ns) || ns > 1e18)  // ~31 years: beyond any sane timeout
    return std::nullopt;
  return caf::timespan{static_cast<int64_t>(std::llround(ns))};
}

std::optional<int64_t> parse_size(const std::string& text) {
  static const std::regex re(R"(^([0-9]+(\.[0-9]+)?) ?([kKmMgGtT]?)(i?[bB])?$)");
  std::smatch m;
  if (!std::regex_match(text, m, re))
    return std::nullopt;
  double value = std::stod(m[1].str());
  auto unit = m[3].str();
  double mult = 1;
  switch (unit.empty() ? ' ' : std::tolower(unit[0])) {
    case 'k': mult = 1024.0; break;
    case 'm': mult = 1024.0 * 1024; break;
    case 'g': mult = 1024.0 * 1024 * 1024; break;
    case 't': mult = 1024.0 * 1024 * 1024 * 1024; break;
    default: break;
  }
  double bytes = value * mult;
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
