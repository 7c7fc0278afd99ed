#include "messages/json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>

namespace troupe {

using json = nlohmann::ordered_json;

namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar.
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int days_in_month(int y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

// `count` digits at `pos` as a number, or -1.
int digits(const std::string& s, size_t pos, size_t count) {
  if (pos + count > s.size())
    return -1;
  int v = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i])))
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

} // namespace

std::optional<caf::timestamp> parse_iso8601(const std::string& text, std::string* why) {
  auto fail = [&](const std::string& what) -> std::optional<caf::timestamp> {
    if (why != nullptr)
      *why = what;
    return std::nullopt;
  };
  const char* form = "is not an RFC 3339 time (e.g. 2026-11-24T09:30:00Z)";
  int y = digits(text, 0, 4), mo = digits(text, 5, 2), d = digits(text, 8, 2);
  int h = digits(text, 11, 2), mi = digits(text, 14, 2), sec = digits(text, 17, 2);
  if (text.size() < 20 || y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0
      || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't')
      || text[13] != ':' || text[16] != ':')
    return fail(form);
  if (mo < 1 || mo > 12)
    return fail("month " + std::to_string(mo) + " is not 1-12");
  if (d < 1 || d > days_in_month(y, mo))
    return fail("day " + std::to_string(d) + " is not in " + text.substr(0, 7) + " (1-"
                + std::to_string(days_in_month(y, mo)) + ")");
  if (h > 23)
    return fail("hour " + std::to_string(h) + " is not 0-23");
  if (mi > 59)
    return fail("minute " + std::to_string(mi) + " is not 0-59");
  if (sec > 59)
    return fail("second " + std::to_string(sec) + " is not 0-59");
  size_t pos = 19;
  int64_t frac_ns = 0;
  if (text[pos] == '.') {
    size_t start = ++pos;
    int64_t scale = 100000000;
    for (; pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos])); ++pos) {
      frac_ns += (text[pos] - '0') * scale;
      scale /= 10;
    }
    if (pos == start)
      return fail(form);
  }
  int64_t offset_min = 0;
  if (pos + 1 == text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
    // UTC
  } else if (pos + 6 == text.size() && (text[pos] == '+' || text[pos] == '-')
             && text[pos + 3] == ':') {
    int oh = digits(text, pos + 1, 2), om = digits(text, pos + 4, 2);
    if (oh < 0 || om < 0 || oh > 23 || om > 59)
      return fail("offset '" + text.substr(pos) + "' is not +HH:MM or -HH:MM");
    offset_min = (oh * 60 + om) * (text[pos] == '-' ? -1 : 1);
  } else {
    return fail(form);
  }
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
  // caf::timestamp counts nanoseconds in 64 bits: 1677-09-21 to 2262-04-11.
  constexpr int64_t latest = INT64_MAX / 1000000000 - 1;
  if (secs > latest || secs < -latest)
    return fail("is outside the times troupe can hold (1677-09-22 to 2262-04-11)");
  return caf::timestamp{std::chrono::seconds(secs) + std::chrono::nanoseconds(frac_ns)};
}

std::string iso8601(caf::timestamp ts) {
  using namespace std::chrono;
  auto since = ts.time_since_epoch();
  auto secs = duration_cast<seconds>(since);
  auto ms = duration_cast<milliseconds>(since - secs).count();
  if (ms < 0) {
    secs -= seconds{1};
    ms += 1000;
  }
  std::time_t t = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

namespace {

double seconds_of(caf::timespan x) {
  return std::chrono::duration<double>(x).count();
}

template <class T>
json opt(const caf::optional<T>& x) {
  return x ? json(*x) : json(nullptr);
}

json opt_ts(const caf::optional<caf::timestamp>& x) {
  return x ? json(iso8601(*x)) : json(nullptr);
}

} // namespace

void to_json(json& j, const host_figures& x) {
  j = json{{"cpu_percent", x.cpu_percent},
           {"mem_total_bytes", x.mem_total_bytes},
           {"mem_used_bytes", x.mem_used_bytes},
           {"load1", x.load1}};
}

void to_json(json& j, const tree_figures& x) {
  j = json{{"pids", x.pids},
           {"rss_bytes", x.rss_bytes},
           {"cpu_seconds", x.cpu_seconds}};
  if (x.gpu_memory_bytes >= 0) {
    j["gpu_memory_bytes"] = x.gpu_memory_bytes;
    j["gpus"] = x.gpus;
    j["gpu_util_percent"] = x.gpu_util_percent < 0 ? json(nullptr) : json(x.gpu_util_percent);
  }
}

void to_json(json& j, const gpu_figures& x) {
  j = json{{"index", x.index},
           {"name", x.name},
           {"uuid", x.uuid},
           {"util_percent", x.util_percent},
           {"mem_total_bytes", x.mem_total_bytes},
           {"mem_used_bytes", x.mem_used_bytes},
           {"mem_free_bytes", x.mem_free_bytes},
           {"temperature_c", x.temperature_c},
           {"power_watts", x.power_watts < 0 ? json(nullptr) : json(x.power_watts)},
           {"mig_mode", x.mig_mode},
           {"pci_bus_id", x.pci_bus_id},
           {"near_cores", x.near_cores.empty() ? json(nullptr) : json(x.near_cores)},
           {"numa_node", x.numa_node < 0 ? json(nullptr) : json(x.numa_node)}};
  auto procs = json::array();
  for (auto& p : x.processes)
    procs.push_back({{"pid", p.pid},
                     {"used_bytes", p.used_bytes < 0 ? json(nullptr) : json(p.used_bytes)}});
  j["processes"] = std::move(procs);
}

void to_json(json& j, const gpu_grant& x) {
  j = json{{"id", x.lease_id.empty() ? json(nullptr) : json(x.lease_id)},
           {"state", x.outcome},
           {"holder", x.holder},
           {"gpus", x.gpus},
           {"indices", x.indices},
           {"memory_bytes", x.memory_bytes},
           {"priority", x.priority},
           {"granted_at", opt_ts(x.granted_at)},
           {"expires_at", opt_ts(x.expires_at)},
           {"reason", x.reason.empty() ? json(nullptr) : json(x.reason)}};
}

void to_json(json& j, const gpu_policy& x) {
  j = json{{"safe_mode", x.safe_mode},
           {"default_ttl_s", seconds_of(x.default_ttl)},
           {"reserve_bytes", x.reserve_bytes},
           {"max_leases_per_holder", x.max_leases_per_holder},
           {"release_grace_s", seconds_of(x.release_grace)}};
}

void to_json(json& j, const gpu_inventory& x) {
  j = json{{"available", x.available},
           {"reason", x.reason.empty() ? json(nullptr) : json(x.reason)},
           {"driver_version", x.driver_version.empty() ? json(nullptr) : json(x.driver_version)},
           {"safe_mode", x.safe_mode},
           {"gpus", x.gpus},
           {"held_elsewhere", x.held_elsewhere}};
}

void to_json(json& j, const gpu_event& x) {
  j = json{{"id", x.id},
           {"at", iso8601(x.at)},
           {"kind", x.kind},
           {"lease_id", x.lease_id.empty() ? json(nullptr) : json(x.lease_id)},
           {"holder", x.holder.empty() ? json(nullptr) : json(x.holder)},
           {"message", x.message}};
}

void to_json(json& j, const top_process& x) {
  j = json{{"pid", x.pid},
           {"name", x.name},
           {"rss_bytes", x.rss_bytes},
           {"cpu_percent", x.cpu_percent}};
}

void to_json(json& j, const snapshot& x) {
  j = json{{"ts", iso8601(x.ts)},    {"run_id", x.run_id},
           {"stage", x.stage},       {"phase", x.phase},
           {"host", x.host},         {"process", opt(x.process)},
           {"gpus", x.gpus},         {"top", x.top}};
}

void to_json(json& j, const host_info& x) {
  j = json{{"hostname", x.hostname},
           {"kernel", x.kernel},
           {"cpu_model", x.cpu_model},
           {"cores", x.cores},
           {"pus", x.pus},
           {"numa_nodes", x.numa_nodes},
           {"mem_total_bytes", x.mem_total_bytes},
           {"gpus", x.gpus},
           {"process_tracking", x.process_tracking}};
}

void to_json(json& j, const probe_record& x) {
  j = json{{"name", x.name},
           {"phase", x.phase},
           {"status", x.status},
           {"error", x.error.empty() ? json(nullptr) : json(x.error)},
           {"exit_code", opt(x.exit_code)},
           {"duration_s", seconds_of(x.duration)},
           {"stdout_log", x.stdout_log},
           {"stderr_log", x.stderr_log}};
}

void to_json(json& j, const run_options& x) {
  j = json{{"pipeline_file", x.pipeline_file},
           {"output_dir", x.output_dir},
           {"enabled", x.enabled},
           {"sample_interval_s", seconds_of(x.sample_interval)},
           {"grace_s", seconds_of(x.grace)},
           {"max_parallel", x.max_parallel},
           {"on_failure", x.continue_on_failure ? "continue" : "stop"},
           {"pipeline_sha256", x.pipeline_sha256},
           {"launched_by", x.launched_by}};
}

namespace {

// A before/after snapshot inside a stage record: the run, stage and phase
// are implied, and the top processes are in the record's top_processes.
json embedded(const caf::optional<snapshot>& s) {
  if (!s)
    return nullptr;
  return json{{"ts", iso8601(s->ts)},
              {"host", s->host},
              {"process", opt(s->process)},
              {"gpus", s->gpus}};
}

json stage_totals(const run_record& x) {
  double cpu = 0;
  int64_t peak = 0;
  int32_t executed = 0;
  for (const auto& s : x.stages) {
    cpu += s.resources.cpu_seconds;
    peak = std::max(peak, s.resources.peak_rss_bytes);
    if (s.started_at)
      ++executed;
  }
  json wall = x.finished_at ? json(seconds_of(*x.finished_at - x.started_at))
                            : json(nullptr);
  return json{{"cpu_seconds", cpu},
              {"peak_rss_bytes", peak},
              {"wall_seconds", wall},
              {"stages_executed", executed}};
}

// state_before, state_after and delta from the probes' records.
json probe_states(const std::vector<probe_record>& probes) {
  json before = json::object(), after = json::object(), delta = json::object();
  for (auto& p : probes) {
    auto& side = p.phase == "before" ? before : after;
    side[p.name] = p.status == "ok" ? json::parse(p.output, nullptr, false) : json(nullptr);
  }
  for (auto& [name, b] : before.items()) {
    if (!after.contains(name) || !b.is_object() || !after[name].is_object())
      continue;
    json d = json::object();
    for (auto& [key, v0] : b.items()) {
      const auto& a = after[name];
      if (!a.contains(key) || !v0.is_number() || !a[key].is_number())
        continue;
      const auto& v1 = a[key];
      if (v0.is_number_integer() && v1.is_number_integer())
        d[key] = v1.get<int64_t>() - v0.get<int64_t>();
      else
        d[key] = v1.get<double>() - v0.get<double>();
    }
    delta[name] = d;
  }
  return json{{"state_before", before}, {"state_after", after}, {"delta", delta}};
}

json run_header(const run_record& x) {
  json h{{"run_id", x.run_id},
              {"pipeline", x.pipeline},
              {"status", to_string(x.status)},
              {"failure_code",
               x.failure == failure_code::none ? json(nullptr) : json(to_string(x.failure))},
              {"reason", x.reason.empty() ? json(nullptr) : json(x.reason)},
              {"pid", x.pid},
              {"started_at", iso8601(x.started_at)},
              {"finished_at", opt_ts(x.finished_at)},
              {"run_dir", x.run_dir},
              {"host", x.host},
              {"options", x.options},
              {"params", x.params}};
  if (!x.probes.empty()) {
    auto states = probe_states(x.probes);
    for (auto& [k, v] : states.items())
      h[k] = v;
    h["probes"] = x.probes;
  }
  return h;
}

} // namespace

void to_json(json& j, const http_stats& x) {
  auto ms = [](double v) { return v < 0 ? json(nullptr) : json(v); };
  j = json{{"status", x.status == 0 ? json(nullptr) : json(x.status)},
           {"content_type", x.content_type},
           {"content_length", x.content_length},
           {"final_url", x.final_url},
           {"title", x.title},
           {"redirects", x.redirects},
           {"timings_ms",
            {{"dns", ms(x.dns_ms)},
             {"connect", ms(x.connect_ms)},
             {"tls", ms(x.tls_ms)},
             {"first_byte", ms(x.first_byte_ms)},
             {"total", ms(x.total_ms)}}},
           {"resolved_by", x.resolved_by.empty() ? json(nullptr) : json(x.resolved_by)}};
}

// An attempt's `lease` object (metadata.json, the store's attempt stats).
static json lease_json(const gpu_attempt& g) {
  return json{{"lease_id", g.lease_id.empty() ? json(nullptr) : json(g.lease_id)},
              {"gpus", g.gpus},
              {"memory_bytes", g.memory_bytes},
              {"fallback", g.fallback},
              {"reason", g.reason.empty() ? json(nullptr) : json(g.reason)},
              {"peak_gpu_memory_bytes", g.peak_bytes < 0 ? json(nullptr) : json(g.peak_bytes)},
              {"gpu_seconds", g.gpu_seconds},
              {"over_use", g.over}};
}

void to_json(json& j, const attempt_record& x) {
  j = json{{"attempt", x.attempt},
           {"strategy", x.strategy},
           {"status", to_string(x.status)},
           {"failure_code",
            x.failure == failure_code::none ? json(nullptr) : json(to_string(x.failure))},
           {"error", x.error.empty() ? json(nullptr) : json(x.error)},
           {"exit_code", opt(x.exit_code)},
           {"signal", opt(x.signal)},
           {"started_at", opt_ts(x.started_at)},
           {"finished_at", opt_ts(x.finished_at)},
           {"duration_s", x.finished_at ? json(seconds_of(x.duration)) : json(nullptr)},
           {"pid", x.pid == 0 ? json(nullptr) : json(x.pid)},
           {"stdout_log", x.stdout_log},
           {"stderr_log", x.stderr_log},
           {"body_log", x.body_log.empty() ? json(nullptr) : json(x.body_log)},
           {"http", x.http ? json(*x.http) : json(nullptr)},
           {"cpu_seconds", x.cpu_seconds},
           {"peak_rss_bytes", x.peak_rss_bytes},
           {"retry_delay_s", x.retry_delay.count() > 0 ? json(seconds_of(x.retry_delay))
                                                       : json(nullptr)}};
  if (x.lease)
    j["lease"] = lease_json(*x.lease);
}

void to_json(json& j, const stage_record& x) {
  const auto& r = x.resources;
  auto top_of = [](const caf::optional<snapshot>& s) {
    return s ? json(s->top) : json(nullptr);
  };
  j = json{
    {"name", x.name},
    {"kind", x.kind},
    {"command", x.command},
    {"optional", x.optional},
    {"enabled", x.enabled},
    {"depends_on", x.depends_on},
    {"matrix", x.matrix.empty() ? json(nullptr) : json(x.matrix)},
    {"timeout_s", seconds_of(x.timeout)},
    {"status", to_string(x.status)},
    {"started_at", opt_ts(x.started_at)},
    {"finished_at", opt_ts(x.finished_at)},
    {"duration_s", x.started_at ? json(seconds_of(x.duration)) : json(nullptr)},
    {"exit_code", opt(x.exit_code)},
    {"signal", opt(x.signal)},
    {"failure_code",
     x.failure == failure_code::none ? json(nullptr) : json(to_string(x.failure))},
    {"error", x.error.empty() ? json(nullptr) : json(x.error)},
    {"pid", x.pid == 0 ? json(nullptr) : json(x.pid)},
    {"leftovers_killed", x.leftovers_killed},
    {"stdout_log", x.stdout_log.empty() ? json(nullptr) : json(x.stdout_log)},
    {"stderr_log", x.stderr_log.empty() ? json(nullptr) : json(x.stderr_log)},
    {"resources",
     {{"before", embedded(r.before)},
      {"after", embedded(r.after)},
      {"peak_rss_bytes", r.peak_rss_bytes},
      {"cpu_seconds", r.cpu_seconds},
      {"samples", r.samples}}},
    {"top_processes", {{"before", top_of(r.before)}, {"after", top_of(r.after)}}},
    {"strategy", x.strategy},
    {"memory_limit_bytes", x.memory_limit == 0 ? json(nullptr) : json(x.memory_limit)},
    {"max_attempts", x.max_attempts},
    {"attempts", x.attempts},
  };
}

void to_json(json& j, const run_row& x) {
  // docs/glossary.md: a run is `id`; `run_id` stays as its alias.
  j = json{{"id", x.run_id},
           {"run_id", x.run_id},
           {"pipeline", x.pipeline},
           {"pipeline_file", x.pipeline_file},
           {"run_dir", x.run_dir},
           {"status", to_string(x.status)},
           {"failure_code",
            x.failure == failure_code::none ? json(nullptr) : json(to_string(x.failure))},
           {"reason", x.reason},
           {"host", x.host},
           {"pid", x.pid},
           {"created_at", iso8601(x.created_at)},
           {"started_at", opt_ts(x.started_at)},
           {"finished_at", opt_ts(x.finished_at)},
           {"updated_at", iso8601(x.updated_at)},
           {"owner", x.owner},
           {"heartbeat_at", opt_ts(x.heartbeat_at)},
           {"schedule_id", x.schedule_id.empty() ? json(nullptr) : json(x.schedule_id)},
           {"scheduled_for", opt_ts(x.scheduled_for)},
           {"pipeline_sha256", x.pipeline_sha256},
           {"launched_by", x.launched_by.empty() ? json(nullptr) : json(x.launched_by)},
           {"params", json::parse(x.params.empty() ? "{}" : x.params, nullptr, false).is_object()
                        ? json::parse(x.params)
                        : json::object()}};
  // state_before, state_after, delta and probes, when the run has probes.
  auto state = json::parse(x.state.empty() ? "{}" : x.state, nullptr, false);
  if (state.is_object())
    for (auto& [k, v] : state.items())
      j[k] = v;
}

void to_json(json& j, const schedule_row& x) {
  j = json{{"id", x.id},
           {"pipeline", x.pipeline},
           {"kind", x.kind}};
  if (x.kind == "once")
    j["at"] = x.spec;
  else if (x.kind == "interval")
    j["every"] = x.spec;
  else
    j["cron"] = x.spec;
  auto options = json::parse(x.options.empty() ? "{}" : x.options, nullptr, false);
  j["overlap"] = x.overlap;
  j["catch_up"] = x.catch_up;
  j["enabled"] = x.enabled;
  j["priority"] = x.priority;
  j["enable"] = options.is_object() && options.contains("enable") ? options["enable"]
                                                                   : json::array();
  j["env"] = options.is_object() && options.contains("env") ? options["env"] : json::object();
  j["next_run_at"] = opt_ts(x.next_run_at);
  j["claimed_by"] = x.claimed_by.empty() ? json(nullptr) : json(x.claimed_by);
  j["claimed_until"] = opt_ts(x.claimed_until);
  j["last_run_id"] = x.last_run_id.empty() ? json(nullptr) : json(x.last_run_id);
  j["created_at"] = iso8601(x.created_at);
  j["updated_at"] = iso8601(x.updated_at);
}

void to_json(json& j, const schedule_event_row& x) {
  j = json{{"id", x.id},
           {"ts", iso8601(x.ts)},
           {"schedule_id", x.schedule_id},
           {"coordinator", x.coordinator},
           {"kind", x.kind},
           {"scheduled_for", opt_ts(x.scheduled_for)},
           {"run_id", x.run_id.empty() ? json(nullptr) : json(x.run_id)},
           {"message", x.message}};
}

void to_json(json& j, const job_row& x) {
  // docs/glossary.md: a stage is `name`; `job` stays as its alias.
  j = json{{"name", x.job},
           {"job", x.job},
           {"position", x.position},
           {"status", to_string(x.status)},
           {"attempts", x.attempts},
           {"failure_code",
            x.failure == failure_code::none ? json(nullptr) : json(to_string(x.failure))},
           {"error", x.error},
           {"updated_at", iso8601(x.updated_at)}};
}

namespace {

json parsed_object(const std::string& text) {
  auto j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json::object() : j;
}

} // namespace

void to_json(json& j, const attempt_row& x) {
  j = json{{"stage", x.job},
           {"job", x.job},
           {"attempt", x.attempt},
           {"status", to_string(x.status)},
           {"strategy", x.strategy},
           {"failure_code",
            x.failure == failure_code::none ? json(nullptr) : json(to_string(x.failure))},
           {"error", x.error},
           {"exit_code", opt(x.exit_code)},
           {"signal", opt(x.signal)},
           {"http_status", opt(x.http_status)},
           {"pid", x.pid},
           {"started_at", opt_ts(x.started_at)},
           {"finished_at", opt_ts(x.finished_at)},
           {"duration_ms", x.duration_ms},
           {"stats", parsed_object(x.stats)}};
}

void to_json(json& j, const event_row& x) {
  j = json{{"id", x.id},
           {"ts", iso8601(x.ts)},
           {"run_id", x.run_id},
           {"stage", x.job.empty() ? json(nullptr) : json(x.job)},
           {"job", x.job.empty() ? json(nullptr) : json(x.job)},
           {"attempt", x.attempt == 0 ? json(nullptr) : json(x.attempt)},
           {"level", to_string(x.level)},
           {"message", x.message},
           {"meta", parsed_object(x.meta)}};
}

namespace {

std::string str_at(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string{};
}

int64_t int_at(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<int64_t>() : 0;
}

caf::optional<int32_t> opt_int_at(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number())
    return caf::none;
  return j[key].get<int32_t>();
}

caf::optional<caf::timestamp> opt_ts_at(const json& j, const char* key) {
  if (auto t = parse_iso8601(str_at(j, key)))
    return *t;
  return caf::none;
}

caf::timestamp ts_at(const json& j, const char* key) {
  return parse_iso8601(str_at(j, key)).value_or(caf::timestamp{});
}

failure_code code_at(const json& j) {
  auto c = str_at(j, "failure_code");
  return c.empty() ? failure_code::none : parse_failure_code(c).value_or(failure_code::unknown);
}

std::string object_text(const json& j, const char* key) {
  return j.contains(key) && j[key].is_object() ? j[key].dump() : std::string("{}");
}

} // namespace

void from_json(const json& j, run_row& x) {
  x.run_id = str_at(j, "run_id");
  x.pipeline = str_at(j, "pipeline");
  x.pipeline_file = str_at(j, "pipeline_file");
  x.run_dir = str_at(j, "run_dir");
  x.status = parse_run_status(str_at(j, "status")).value_or(run_status::failed);
  x.failure = code_at(j);
  x.reason = str_at(j, "reason");
  x.host = str_at(j, "host");
  x.pid = static_cast<int32_t>(int_at(j, "pid"));
  x.created_at = ts_at(j, "created_at");
  x.started_at = opt_ts_at(j, "started_at");
  x.finished_at = opt_ts_at(j, "finished_at");
  x.updated_at = ts_at(j, "updated_at");
  x.owner = str_at(j, "owner");
  x.heartbeat_at = opt_ts_at(j, "heartbeat_at");
  x.schedule_id = str_at(j, "schedule_id");
  x.scheduled_for = opt_ts_at(j, "scheduled_for");
  x.params = object_text(j, "params");
  x.pipeline_sha256 = str_at(j, "pipeline_sha256");
  x.launched_by = str_at(j, "launched_by");
  json state = json::object();
  for (auto key : {"state_before", "state_after", "delta", "probes"})
    if (j.contains(key))
      state[key] = j[key];
  x.state = state.dump();
}

void from_json(const json& j, job_row& x) {
  x.job = str_at(j, "job");
  x.position = static_cast<int32_t>(int_at(j, "position"));
  x.status = parse_stage_status(str_at(j, "status")).value_or(stage_status::failed);
  x.attempts = j.contains("attempts") && j["attempts"].is_array()
                 ? static_cast<int32_t>(j["attempts"].size())
                 : static_cast<int32_t>(int_at(j, "attempts"));
  x.failure = code_at(j);
  x.error = str_at(j, "error");
  x.updated_at = ts_at(j, "updated_at");
}

void from_json(const json& j, attempt_row& x) {
  x.job = str_at(j, "job");
  x.attempt = static_cast<int32_t>(int_at(j, "attempt"));
  x.status = parse_stage_status(str_at(j, "status")).value_or(stage_status::failed);
  x.strategy = str_at(j, "strategy");
  x.failure = code_at(j);
  x.error = str_at(j, "error");
  x.exit_code = opt_int_at(j, "exit_code");
  x.signal = opt_int_at(j, "signal");
  x.http_status = opt_int_at(j, "http_status");
  x.pid = static_cast<int32_t>(int_at(j, "pid"));
  x.started_at = opt_ts_at(j, "started_at");
  x.finished_at = opt_ts_at(j, "finished_at");
  x.duration_ms = int_at(j, "duration_ms");
  x.stats = object_text(j, "stats");
}

void from_json(const json& j, event_row& x) {
  x.id = int_at(j, "id");
  x.ts = ts_at(j, "ts");
  x.run_id = str_at(j, "run_id");
  x.job = str_at(j, "job");
  x.attempt = static_cast<int32_t>(int_at(j, "attempt"));
  x.level = parse_event_level(str_at(j, "level")).value_or(event_level::info);
  x.message = str_at(j, "message");
  x.meta = object_text(j, "meta");
}

std::map<std::string, std::string> params_of(const run_row& r) {
  std::map<std::string, std::string> out;
  auto stored = json::parse(r.params.empty() ? "{}" : r.params, nullptr, false);
  if (stored.is_object())
    for (auto& [k, v] : stored.items())
      out[k] = v.is_string() ? v.get<std::string>() : v.dump();
  return out;
}

std::string params_json(const std::map<std::string, std::string>& params) {
  return json(params).dump(-1, ' ', false, json::error_handler_t::replace);
}

void to_json(json& j, const run_record& x) {
  j = run_header(x);
  j["stages"] = x.stages;
  j["totals"] = stage_totals(x);
}

namespace {

// Text from the host (process names from /proc, commands, error messages)
// may hold invalid UTF-8: it is replaced by U+FFFD instead of throwing.
std::string dump(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

} // namespace

meta& meta::add(const std::string& key, const std::string& value) {
  text_ += (text_.empty() ? "" : ",") + dump(json(key), -1) + ":" + dump(json(value), -1);
  return *this;
}

meta& meta::add(const std::string& key, const char* value) {
  return add(key, std::string(value));
}

meta& meta::add(const std::string& key, int64_t value) {
  text_ += (text_.empty() ? "" : ",") + dump(json(key), -1) + ":" + std::to_string(value);
  return *this;
}

meta& meta::add(const std::string& key, int32_t value) {
  return add(key, static_cast<int64_t>(value));
}

meta& meta::add(const std::string& key, double value) {
  text_ += (text_.empty() ? "" : ",") + dump(json(key), -1) + ":" + dump(json(value), -1);
  return *this;
}

meta& meta::add(const std::string& key, bool value) {
  text_ += (text_.empty() ? "" : ",") + dump(json(key), -1) + ":" + (value ? "true" : "false");
  return *this;
}

std::string meta::str() const {
  return "{" + text_ + "}";
}

std::string attempt_stats(const attempt_record& x) {
  json j{{"cpu_seconds", x.cpu_seconds},
         {"peak_rss_bytes", x.peak_rss_bytes},
         {"stdout_log", x.stdout_log},
         {"stderr_log", x.stderr_log}};
  if (!x.body_log.empty())
    j["body_log"] = x.body_log;
  if (x.http)
    j["http"] = *x.http;
  if (x.retry_delay.count() > 0)
    j["retry_delay_s"] = seconds_of(x.retry_delay);
  if (x.lease)
    j["lease"] = lease_json(*x.lease);
  return dump(j, -1);
}

attempt_figures parse_attempt_stats(const std::string& stats) {
  attempt_figures f;
  auto j = json::parse(stats, nullptr, false);
  if (!j.is_object())
    return f;
  if (auto it = j.find("cpu_seconds"); it != j.end() && it->is_number())
    f.cpu_seconds = it->get<double>();
  if (auto it = j.find("peak_rss_bytes"); it != j.end() && it->is_number())
    f.peak_rss_bytes = it->get<int64_t>();
  return f;
}

std::string runs_document(const std::vector<run_row>& runs) {
  return dump(json{{"runs", runs}}, 2) + "\n";
}

std::string show_document(const run_row& run, const std::vector<job_row>& jobs,
                          const std::vector<attempt_row>& attempts) {
  json j = run;
  json stages = json::array();
  for (auto& job : jobs) {
    json s = job;
    json list = json::array();
    for (auto& a : attempts)
      if (a.job == job.job)
        list.push_back(a);
    s["attempts"] = list;
    stages.push_back(s);
  }
  // docs/glossary.md: the run's `stages`; `jobs` stays as their alias.
  j["stages"] = stages;
  j["jobs"] = stages;
  return dump(j, 2) + "\n";
}

std::string events_document(const std::vector<event_row>& events) {
  return dump(json{{"events", events}}, 2) + "\n";
}

std::string trace_line(const snapshot& x) {
  return dump(json(x), -1);
}

std::string metadata_document(const run_record& x) {
  return dump(json(x), 2) + "\n";
}

std::string metadata_renderer::render(const run_record& x) {
  // The header with a placeholder where the stages go, then each stage's
  // cached text, indented to its place: byte for byte what dump(2) gives.
  static const std::string placeholder = "\"@@troupe-stages@@\"";
  stages_.resize(x.stages.size());
  std::string stages_text = "[";
  for (size_t i = 0; i < x.stages.size(); ++i) {
    auto& [rev, text] = stages_[i];
    if (rev != x.stages[i].revision + 1) {
      auto raw = dump(json(x.stages[i]), 2);
      text.clear();
      text.reserve(raw.size() + raw.size() / 8);
      text += "    ";
      for (char c : raw) {
        text += c;
        if (c == '\n')
          text += "    ";
      }
      rev = x.stages[i].revision + 1;
    }
    stages_text += (i == 0 ? "\n" : ",\n") + text;
  }
  stages_text += x.stages.empty() ? "]" : "\n  ]";
  auto doc = run_header(x);
  doc["stages"] = "@@troupe-stages@@";
  doc["totals"] = stage_totals(x);
  auto out = dump(doc, 2);
  out.replace(out.find(placeholder), placeholder.size(), stages_text);
  return out + "\n";
}

std::optional<std::string> probe_object(const std::string& printed, std::string* error) {
  auto j = json::parse(printed, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    auto shown = printed.substr(0, 60);
    for (auto& ch : shown)
      if (ch == '\n' || ch == '\r' || ch == '\t')
        ch = ' ';
    *error = printed.empty() ? "printed nothing; a probe prints one JSON object"
                             : "printed '" + shown + (printed.size() > 60 ? "...'" : "'")
                                 + ", not one JSON object";
    return std::nullopt;
  }
  for (auto& [k, v] : j.items()) {
    if (!v.is_number() && !v.is_string()) {
      *error = "'" + k + "' is " + std::string(v.type_name())
               + "; a probe prints numbers and strings";
      return std::nullopt;
    }
  }
  return dump(j, -1);
}

std::string probe_state_json(const std::vector<probe_record>& probes) {
  auto j = probe_states(probes);
  j["probes"] = probes;
  return dump(j, -1);
}

} // namespace troupe
