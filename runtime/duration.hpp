// Durations in pipeline files and flags: `500ms`, `30s`, `10m`, `1h`, or a
// plain number of seconds (`90`, `2.5`).
#pragma once

#include <caf/timestamp.hpp>

#include <optional>
#include <string>

namespace troupe {

/// nullopt when `text` is not a duration; negative values never parse.
std::optional<caf::timespan> parse_duration(const std::string& text);

/// Sizes: `512M`, `2G`, `100MiB`, `64k`, or plain bytes; K/M/G/T are
/// powers of 1024 with or without `i`/`B`. nullopt when not a size.
std::optional<int64_t> parse_size(const std::string& text);

/// For people: `250ms`, `1.5s`, `2m03s`, `1h00m`.
std::string format_duration(caf::timespan d);

} // namespace troupe
