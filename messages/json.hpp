// The one JSON codec (ordered: keys keep the order written here): metadata.json and resource_trace.jsonl are written
// from these functions, and later the API and `--json` output will be too.
#pragma once

#include "messages/gpu_broker.hpp"
#include "messages/resource_sampler.hpp"
#include "messages/run.hpp"
#include "messages/store.hpp"

#include <nlohmann/json_fwd.hpp>

#include <caf/timestamp.hpp>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace troupe {

/// UTC, ISO-8601 with milliseconds: 2026-11-23T09:14:03.127Z.
std::string iso8601(caf::timestamp ts);

/// An RFC 3339 time, strictly: YYYY-MM-DDTHH:MM:SS[.fraction] then Z or
/// +HH:MM/-HH:MM; every field within its range (no rollover: 2026-02-30 and
/// 25:61 are refused), and no later than 2262-04-11T23:47:16Z (what a
/// nanosecond timestamp holds). The inverse of iso8601(). nullopt when not;
/// `why` (if given) then says which part is wrong.
std::optional<caf::timestamp> parse_iso8601(const std::string& text, std::string* why = nullptr);

void to_json(nlohmann::ordered_json& j, const host_figures& x);
void to_json(nlohmann::ordered_json& j, const tree_figures& x);
void to_json(nlohmann::ordered_json& j, const gpu_figures& x);
void to_json(nlohmann::ordered_json& j, const gpu_grant& x);
void to_json(nlohmann::ordered_json& j, const gpu_policy& x);
void to_json(nlohmann::ordered_json& j, const gpu_inventory& x);
void to_json(nlohmann::ordered_json& j, const gpu_event& x);
void to_json(nlohmann::ordered_json& j, const top_process& x);
void to_json(nlohmann::ordered_json& j, const snapshot& x);
void to_json(nlohmann::ordered_json& j, const host_info& x);
void to_json(nlohmann::ordered_json& j, const run_options& x);
void to_json(nlohmann::ordered_json& j, const probe_record& x);
void to_json(nlohmann::ordered_json& j, const http_stats& x);
void to_json(nlohmann::ordered_json& j, const attempt_record& x);
void to_json(nlohmann::ordered_json& j, const stage_record& x);
void to_json(nlohmann::ordered_json& j, const run_row& x);
void to_json(nlohmann::ordered_json& j, const job_row& x);
void to_json(nlohmann::ordered_json& j, const attempt_row& x);
void to_json(nlohmann::ordered_json& j, const event_row& x);
void to_json(nlohmann::ordered_json& j, const schedule_row& x);
// The inverse of the four row documents above (the CLI reads the API's).
void from_json(const nlohmann::ordered_json& j, run_row& x);
void from_json(const nlohmann::ordered_json& j, job_row& x);
void from_json(const nlohmann::ordered_json& j, attempt_row& x);
void from_json(const nlohmann::ordered_json& j, event_row& x);
void to_json(nlohmann::ordered_json& j, const schedule_event_row& x);
void to_json(nlohmann::ordered_json& j, const run_record& x);

/// A flat JSON object, for event meta: meta().add("delay_ms", 3000).str().
class meta {
public:
  meta& add(const std::string& key, const std::string& value);
  meta& add(const std::string& key, const char* value);
  meta& add(const std::string& key, int64_t value);
  meta& add(const std::string& key, int32_t value);
  meta& add(const std::string& key, double value);
  meta& add(const std::string& key, bool value);
  std::string str() const;

private:
  std::string text_;
};

/// The attempts table's `stats` column: resources and HTTP figures.
std::string attempt_stats(const attempt_record& x);
/// A run's parameter values as the store keeps them: one JSON object.
std::string params_json(const std::map<std::string, std::string>& params);
/// The inverse: the values a run was given (`run_row::params`); a value that
/// is not a string comes back as its JSON text, anything unreadable as none.
std::map<std::string, std::string> params_of(const run_row& r);
/// What a probe printed, checked: the object as compact JSON, or the reason
/// it is not one JSON object of numbers and strings (`*error`).
std::optional<std::string> probe_object(const std::string& printed, std::string* error);
/// A run's probes as the store keeps them and the API returns them:
/// {"state_before": {probe: object|null}, "state_after": ..., "delta":
/// {probe: {key: after - before}} (numeric keys in both), "probes": [...]}.
std::string probe_state_json(const std::vector<probe_record>& probes);

/// The figures `troupe show` prints from an attempt's stats column; -1
/// where the column has none.
struct attempt_figures {
  double cpu_seconds = -1;
  int64_t peak_rss_bytes = -1;
};
attempt_figures parse_attempt_stats(const std::string& stats);

/// `--json` output of the CLI: one document.
std::string runs_document(const std::vector<run_row>& runs);
std::string show_document(const run_row& run, const std::vector<job_row>& jobs,
                          const std::vector<attempt_row>& attempts);
std::string events_document(const std::vector<event_row>& events);

/// One line of resource_trace.jsonl, without the newline.
std::string trace_line(const snapshot& x);

/// The whole metadata.json document, pretty-printed, with a final newline.
std::string metadata_document(const run_record& x);

/// Renders metadata_document() for successive versions of one run, keeping
/// each stage's text and re-rendering only the stages whose `revision`
/// changed: a rewrite costs O(changed stages), not O(all stages).
class metadata_renderer {
public:
  std::string render(const run_record& x);

private:
  std::vector<std::pair<uint32_t, std::string>> stages_;  // (revision + 1, text)
};

} // namespace troupe
