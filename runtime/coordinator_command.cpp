#include "runtime/coordinator_command.hpp"

#include "actors/gpu_lease_book.hpp"

#include "runtime/system.hpp"
#include "adapters/threads/thread_name.hpp"

#include "messages/errors.hpp"
#include "runtime/api_server.hpp"
#include "runtime/coordinator.hpp"
#include "runtime/duration.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <csignal>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace troupe {

namespace {

constexpr int usage = 2;

// One setting, from wherever it came: the error names that place.
struct setting_error {
  std::string where;
  std::string what;
};

std::string absolute_from(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || path.find("://") != std::string::npos
      || path.rfind("sqlite:", 0) == 0)
    return path;
  return base_dir + "/" + path;
}

std::optional<setting_error> set_duration(caf::timespan& out, const std::string& text,
                                          const std::string& where) {
  auto d = parse_duration(text);
  if (!d || d->count() <= 0)
    return setting_error{where, "'" + text + "' is not a positive duration (e.g. 30s)"};
  out = *d;
  return std::nullopt;
}

std::optional<setting_error> set_int(int32_t& out, const std::string& text,
                                     const std::string& where) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < 0 || v > 100000)
    return setting_error{where, "'" + text + "' is not a whole number from 0 to 100000"};
  out = static_cast<int32_t>(v);
  return std::nullopt;
}

std::optional<setting_error> set_count(size_t& out, const std::string& text,
                                       const std::string& where, size_t lo, size_t hi) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || *end != '\0' || errno != 0 || v < lo || v > hi)
    return setting_error{where, "'" + text + "' is not a whole number from " + std::to_string(lo)
                                  + " to " + std::to_string(hi)};
  out = static_cast<size_t>(v);
  return std::nullopt;
}

// Bytes: a whole number, or one with KiB / MiB.
std::optional<setting_error> set_bytes(size_t& out, const std::string& text,
                                       const std::string& where) {
  std::string digits = text;
  size_t unit = 1;
  for (auto [suffix, mult] : {std::pair<const char*, size_t>{"KiB", 1024}, {"MiB", 1 << 20}}) {
    auto n = std::strlen(suffix);
    if (digits.size() > n && digits.compare(digits.size() - n, n, suffix) == 0) {
      digits.resize(digits.size() - n);
      unit = mult;
      break;
    }
  }
  size_t v = 0;
  if (set_count(v, digits, where, 1, (size_t{1} << 40) / unit))
    return setting_error{where, "'" + text + "' is not a size in bytes (e.g. 1048576, 64KiB, 1MiB)"};
  out = v * unit;
  return std::nullopt;
}

std::optional<setting_error> set_millis(std::chrono::milliseconds& out, const std::string& text,
                                        const std::string& where) {
  caf::timespan t{};
  if (auto err = set_duration(t, text, where))
    return err;
  out = std::chrono::duration_cast<std::chrono::milliseconds>(t);
  if (out.count() <= 0)
    return setting_error{where, "'" + text + "' is under a millisecond"};
  return std::nullopt;
}

std::optional<setting_error> apply(coordinator_config& c, std::string& token_file,
                                   const std::string& key, const std::string& value,
                                   const std::string& where) {
  if (key == "listen")
    c.listen = value;
  else if (key == "db")
    c.db = value;
  else if (key == "output")
    c.output = value;
  else if (key == "pipelines")
    c.pipelines = value;
  else if (key == "token")
    c.token = value;
  else if (key == "token_file")
    token_file = value;
  else if (key == "id")
    c.id = value;
  else if (key == "log_format") {
    if (value != "text" && value != "json")
      return setting_error{where, "'" + value + "' is not text or json"};
    c.log_format = value;
  } else if (key == "log_level") {
    if (value != "debug" && value != "info" && value != "warn" && value != "error")
      return setting_error{where, "'" + value + "' is not debug, info, warn or error"};
    c.log_level = value;
  } else if (key == "max_running")
    return set_int(c.max_running, value, where);
  else if (key == "node_slots")
    return set_int(c.node_slots, value, where);
  else if (key == "lease")
    return set_duration(c.lease, value, where);
  else if (key == "sample_interval")
    return set_duration(c.sample_interval, value, where);
  else if (key == "grace")
    return set_duration(c.grace, value, where);
  else if (key == "schedule_grace")
    return set_duration(c.schedule_grace, value, where);
  else if (key == "reconcile_every")
    return set_duration(c.reconcile_every, value, where);
  else if (key == "max_connections")
    return set_count(c.http.max_connections, value, where, 1, 1000000);
  else if (key == "max_connections_per_client")
    return set_count(c.http.max_connections_per_client, value, where, 1, 1000000);
  else if (key == "max_body")
    return set_bytes(c.http.max_body, value, where);
  else if (key == "min_free_space")
    return set_bytes(c.min_free_space, value, where);
  else if (key == "header_timeout")
    return set_millis(c.http.header_timeout, value, where);
  else if (key == "body_timeout")
    return set_millis(c.http.body_timeout, value, where);
  else if (key == "api_threads") {
    size_t n = 0;
    if (auto err = set_count(n, value, where, 1, 64))
      return err;
    c.http.handler_threads = static_cast<int>(n);
  } else if (key == "drain") {
    if (value != "true" && value != "false")
      return setting_error{where, "'" + value + "' is not true or false"};
    c.drain = value == "true";
  } else
    return setting_error{where, "unknown setting"};
  return std::nullopt;
}

// `gpu:` in the config file: the node's GPU broker (docs/gpu.md).
std::optional<setting_error> load_gpu(coordinator_config& c, const YAML::Node& n,
                                      const std::string& where) {
  if (!n.IsMap())
    return setting_error{where, "must be a map (safe_mode, default_ttl, reserve, "
                                "max_leases_per_holder, release_grace, memory_enforce)"};
  for (auto it = n.begin(); it != n.end(); ++it) {
    auto key = it->first.as<std::string>();
    auto at = where + "." + key;
    if (!it->second.IsScalar())
      return setting_error{at, "must be a single value"};
    auto v = it->second.as<std::string>();
    std::optional<setting_error> err;
    if (key == "safe_mode" || key == "memory_enforce") {
      bool on = v == "true" || v == "kill";
      if (key == "safe_mode" && v != "true" && v != "false")
        return setting_error{at, "'" + v + "' is not true or false"};
      if (key == "memory_enforce" && v != "warn" && v != "kill")
        return setting_error{at, "'" + v + "' is not warn or kill"};
      (key == "safe_mode" ? c.gpu.safe_mode : c.gpu_memory_kill) = on;
    } else if (key == "default_ttl") {
      if (v == "0")
        c.gpu.default_ttl = caf::timespan{0};
      else
        err = set_duration(c.gpu.default_ttl, v, at);
    } else if (key == "release_grace") {
      err = set_duration(c.gpu.release_grace, v, at);
    } else if (key == "reserve") {
      auto b = v == "0" ? std::optional<int64_t>{0} : parse_size(v);
      if (!b)
        return setting_error{at, "'" + v + "' is not a size (e.g. 2Gi, 512MiB; 0: none)"};
      c.gpu.reserve_bytes = *b;
    } else if (key == "max_leases_per_holder") {
      err = set_int(c.gpu.max_leases_per_holder, v, at);
    } else {
      return setting_error{at, "unknown setting (gpu settings: safe_mode, default_ttl, reserve, "
                               "max_leases_per_holder, release_grace, memory_enforce)"};
    }
    if (err)
      return err;
  }
  if (auto problem = policy_problem(c.gpu); !problem.empty())
    return setting_error{where, problem};
  return std::nullopt;
}

const char* const config_keys[] = {"listen",    "db",          "output",          "pipelines",
                                   "token",     "token_file",  "id",              "log_format",
                                   "log_level", "max_running", "lease",           "sample_interval",
                                   "grace",     "schedule_grace", "reconcile_every", "drain",
                                   "node_slots", "max_connections", "max_connections_per_client",
                                   "max_body", "header_timeout", "body_timeout", "api_threads",
                                   "min_free_space", "gpu"};

std::optional<setting_error> load_file(coordinator_config& c, std::string& token_file,
                                       const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return setting_error{"--config " + path, std::string("cannot read it: ") + std::strerror(errno)};
  } catch (const YAML::Exception& e) {
    return setting_error{path + ":" + std::to_string(e.mark.line + 1), e.msg};
  }
  if (root.IsNull())
    return std::nullopt;
  if (!root.IsMap())
    return setting_error{path, "a map of settings was expected"};
  auto dir = path.find('/') == std::string::npos ? std::string(".") : path.substr(0, path.rfind('/'));
  for (auto it = root.begin(); it != root.end(); ++it) {
    auto key = it->first.as<std::string>();
    auto where = path + ":" + std::to_string(it->first.Mark().line + 1) + ": " + key;
    if (key == "gpu") {
      if (auto err = load_gpu(c, it->second, where))
        return err;
      continue;
    }
    if (!it->second.IsScalar()) {
      std::string names;
      for (auto* k : config_keys)
        names += std::string(names.empty() ? "" : ", ") + k;
      return setting_error{where, std::find(std::begin(config_keys), std::end(config_keys), key)
                                      == std::end(config_keys)
                                    ? "unknown setting (settings: " + names + ")"
                                    : "must be a single value"};
    }
    auto value = it->second.as<std::string>();
    // Paths in the file are relative to the file.
    if (key == "db" || key == "output" || key == "pipelines" || key == "token_file")
      value = absolute_from(dir, value);
    if (auto err = apply(c, token_file, key, value, where)) {
      if (err->what == "unknown setting") {
        std::string names;
        for (auto* k : config_keys)
          names += std::string(names.empty() ? "" : ", ") + k;
        err->what += " (settings: " + names + ")";
      }
      return err;
    }
  }
  return std::nullopt;
}

std::optional<setting_error> settle(const coordinator_command_options& o, coordinator_config& c) {
  std::string token_file;
  if (!o.config.empty())
    if (auto err = load_file(c, token_file, o.config))
      return err;
  struct flag {
    const char* key;
    const char* name;
    const std::optional<std::string>* value;
  };
  const flag flags[] = {{"listen", "--listen", &o.listen},
                        {"db", "--db", &o.db},
                        {"output", "--output", &o.output},
                        {"pipelines", "--pipelines", &o.pipelines},
                        {"token", "--token", &o.token},
                        {"token_file", "--token-file", &o.token_file},
                        {"id", "--id", &o.id},
                        {"log_format", "--log-format", &o.log_format},
                        {"log_level", "--log-level", &o.log_level},
                        {"lease", "--lease", &o.lease}};
  for (auto& f : flags)
    if (*f.value)
      if (auto err = apply(c, token_file, f.key, **f.value, f.name))
        return err;
  if (o.max_running)
    if (auto err = apply(c, token_file, "max_running", std::to_string(*o.max_running),
                         "--max-running"))
      return err;
  if (o.node_slots)
    if (auto err = apply(c, token_file, "node_slots", std::to_string(*o.node_slots),
                         "--node-slots"))
      return err;
  if (o.drain)
    c.drain = true;
  const std::pair<const char*, const char*> env[] = {
    {"TROUPE_LISTEN", "listen"},         {"TROUPE_DB", "db"},
    {"TROUPE_OUTPUT", "output"},         {"TROUPE_PIPELINES", "pipelines"},
    {"TROUPE_TOKEN", "token"},           {"TROUPE_TOKEN_FILE", "token_file"},
    {"TROUPE_COORDINATOR_ID", "id"},     {"TROUPE_LOG_FORMAT", "log_format"},
    {"TROUPE_LOG_LEVEL", "log_level"},   {"TROUPE_MAX_RUNNING", "max_running"},
    {"TROUPE_LEASE", "lease"},           {"TROUPE_NODE_SLOTS", "node_slots"},
    {"TROUPE_MAX_CONNECTIONS", "max_connections"},
    {"TROUPE_MAX_CONNECTIONS_PER_CLIENT", "max_connections_per_client"},
    {"TROUPE_MAX_BODY", "max_body"},     {"TROUPE_HEADER_TIMEOUT", "header_timeout"},
    {"TROUPE_BODY_TIMEOUT", "body_timeout"}, {"TROUPE_API_THREADS", "api_threads"},
    {"TROUPE_MIN_FREE_SPACE", "min_free_space"}};
  for (auto& [var, key] : env)
    if (const char* v = std::getenv(var))
      if (auto err = apply(c, token_file, key, v, std::string("$") + var))
        return err;
  if (const char* v = std::getenv("TROUPE_FAULT_CLAIM_DELAY"))
    if (auto err = set_duration(c.fault_claim_delay, v, "$TROUPE_FAULT_CLAIM_DELAY"))
      return err;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in)
      return setting_error{"token_file " + token_file,
                           std::string("cannot read it: ") + std::strerror(errno)};
    std::stringstream ss;
    ss << in.rdbuf();
    auto t = ss.str();
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' '))
      t.pop_back();
    if (t.empty())
      return setting_error{"token_file " + token_file, "is empty"};
    c.token = t;
  }
  if (c.pipelines.empty())
    return setting_error{"--pipelines", "required: the folder of the pipelines it may launch "
                                        "(the API launches them by name)"};
  return std::nullopt;
}


std::shared_ptr<spdlog::logger> make_logger(const coordinator_config& c, const std::string& id) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto log = std::make_shared<spdlog::logger>("troupe", sink);
  if (c.log_format == "json") {
    // The message arrives as a JSON string already (escaped by nlohmann).
    auto idj = nlohmann::json(id).dump();
    log->set_pattern("{\"ts\":\"%Y-%m-%dT%H:%M:%S.%eZ\",\"level\":\"%l\",\"coordinator\":" + idj
                       + ",\"msg\":%v}",
                     spdlog::pattern_time_type::utc);
  } else {
    log->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %-5l %v", spdlog::pattern_time_type::utc);
  }
  log->set_level(spdlog::level::from_str(c.log_level));
  log->flush_on(spdlog::level::debug);
  return log;
}

} // namespace

bool split_listen(const std::string& listen, std::string& host, int& port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return false;
  host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto p = listen.substr(colon + 1);
  char* end = nullptr;
  long v = std::strtol(p.c_str(), &end, 10);
  if (p.empty() || *end != '\0' || v < 0 || v > 65535)
    return false;
  port = static_cast<int>(v);
  return true;
}

int coordinator_command(const coordinator_command_options& opts) {
  coordinator_config cfg;
  if (auto err = settle(opts, cfg)) {
    std::fprintf(stderr, "troupe coordinator: %s: %s\n", err->where.c_str(), err->what.c_str());
    return usage;
  }
  std::string host;
  int port = 0;
  if (!split_listen(cfg.listen, host, port)) {
    std::fprintf(stderr, "troupe coordinator: listen '%s' is not HOST:PORT (e.g. 127.0.0.1:8420; "
                         "port 0 picks a free one)\n",
                 cfg.listen.c_str());
    return usage;
  }
  std::signal(SIGPIPE, SIG_IGN);
  auto log = make_logger(cfg, cfg.id.empty() ? "" : cfg.id);
  bool json_logs = cfg.log_format == "json";
  auto say = [log, json_logs](const std::string& level, const std::string& message) {
    auto text = json_logs ? nlohmann::json(message).dump() : message;
    log->log(spdlog::level::from_str(level), text);
  };
  // The port first: a second coordinator on a port in use fails before it
  // opens the store, adopts runs or claims schedules (exit 2).
  coordinator coord{cfg, say};
  // Every connection is a descriptor: the soft limit (often 1,024) goes up
  // to the hard one, so that max_connections can be reached.
  auto nofile = raise_open_files_limit();
  if (nofile < cfg.http.max_connections + 64)
    say("warn", "open files limit " + std::to_string(nofile) + " is under max_connections ("
                  + std::to_string(cfg.http.max_connections) + ") + 64: connections past it are "
                  "refused by the kernel, not answered with 503");
  api_server api{coord, cfg.http};
  std::string why;
  int bound = api.bind(host, port, why);
  if (bound < 0) {
    bool taken = why.find("in use") != std::string::npos;
    std::fprintf(stderr, "troupe coordinator: --listen %s: %s%s\n", cfg.listen.c_str(), why.c_str(),
                 taken ? " (another process listens there: another coordinator? `troupe status "
                         "--server http://HOST:PORT` asks it; or pick another --listen)"
                       : "");
    return usage;
  }
  if (auto err = coord.start()) {
    std::fprintf(stderr, "troupe coordinator: %s\n", describe(err).c_str());
    bool bad = err.category() == caf::atom("troupe")
               && err.code() == static_cast<uint8_t>(errc::bad_input);
    return bad ? usage : 4;
  }
  std::thread server([&] {
    name_this_thread("api-io");
    api.serve();
  });
  auto shown_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  say("info", "coordinator " + coord.id() + " serving " + std::to_string(coord.pipelines().size())
                + " pipeline(s) from " + cfg.pipelines + (cfg.token.empty() ? "" : "; the API needs a token"));
  std::printf("listening on http://%s:%d\n", shown_host.c_str(), bound);
  std::fflush(stdout);

  // SIGINT/SIGTERM/SIGHUP are blocked in every thread (main's first line):
  // taken here.
  auto set = stop_signal_set();
  int sig = 0;
  sigwait(&set, &sig);
  say("info", std::string(::strsignal(sig)) + " received: no new requests"
                + (cfg.drain ? "; draining the runs (a second signal stops at once)"
                             : "; runs in flight are left to the next start"));
  api.stop();
  server.join();
  if (cfg.drain) {
    std::thread second([&] {
      int s2 = 0;
      sigwait(&set, &s2);
      say("warn", "second signal: stopping without draining");
      std::fflush(stderr);
      std::_Exit(130);
    });
    second.detach();
  }
  coord.stop(cfg.drain);
  say("info", "stopped");
  std::fflush(stdout);
  std::fflush(stderr);
  // Runs still in flight stay as they are (their next start reconciles
  // them); the actor system is not torn down around them.
  std::_Exit(0);
}

} // namespace troupe
