// `troupe coordinator`: the long-lived process (runtime/coordinator.hpp)
// with its HTTP API (runtime/api_server.hpp). Settings come from, in
// increasing precedence: the defaults, --config FILE (YAML), the flags, and
// TROUPE_* environment variables (docs/coordinator.md lists them).
#pragma once

#include <optional>
#include <string>

namespace troupe {

struct coordinator_command_options {
  std::string config;  // YAML file; empty: none
  // Flags as given (unset: not given on the command line).
  std::optional<std::string> listen, db, output, pipelines, token, token_file, id, log_format,
    log_level, lease;
  std::optional<int> max_running;
  std::optional<int> node_slots;
  bool drain = false;
};

int coordinator_command(const coordinator_command_options& opts);

/// HOST:PORT (an IPv6 host in brackets) into its parts; false when malformed.
bool split_listen(const std::string& listen, std::string& host, int& port);

} // namespace troupe
