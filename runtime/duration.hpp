// Durations in pipeline files and flags: `500ms`, `30s`, `10m`, `1h`, or a
// plain number of seconds (`90`, `2.5`).
#pragma once

#include <caf/timestamp.hpp>

#include <optional>
#include <string>

namespace troupe {

/// nullopt when `text` is not a duration; negative values never parse.
std::optional<caf::timespan> parse_duration(const std::string& text);

/// Sizes with a unit: `512M`, `512Mi`, `512MiB` (mebibytes, powers of 1024,
/// as Slurm and Docker read `512M`), `500MB` (10^6 bytes: SI), `64k`,
/// `4096B`. A bare number is not a size (it used to mean bytes, which
/// surprised users). nullopt when not a size.
std::optional<int64_t> parse_size(const std::string& text);

/// For people: `250ms`, `1.5s`, `2m03s`, `1h00m`.
std::string format_duration(caf::timespan d);

} // namespace troupe
