// The CLI's client commands: they speak to a coordinator's HTTP API
// (runtime/api_client.hpp), never to the database.
//   troupe launch PIPELINE [--wait|--follow]   troupe cancel RUN
//   troupe logs RUN STAGE [--follow] [--stderr] troupe schedule add|list|show|enable|disable|delete
// and `troupe runs|show|events` when a server is given (store_commands.hpp).
#pragma once

#include "runtime/api_client.hpp"
#include "runtime/store_commands.hpp"

#include <optional>
#include <string>
#include <vector>

namespace troupe {

struct client_options : client_flags {
  bool json = false;
};

struct launch_options : client_options {
  std::string pipeline;
  int priority = 0;
  std::vector<std::string> enable;
  std::vector<std::string> env;  // KEY=VALUE
  std::vector<std::string> params;  // NAME=VALUE
  bool wait = false;
  bool follow = false;
  bool cancel_on_interrupt = false;  // Ctrl-C cancels the run instead of detaching
};

struct schedule_options : client_options {
  std::string action;  // add | list | show | edit | enable (resume) | disable (pause) | trigger | delete
  std::string pipeline;
  std::string id;
  std::string every, cron, at;
  std::string overlap, catch_up;
  bool disabled = false;
  int priority = 0;
  std::vector<std::string> enable;
  std::vector<std::string> env;
  std::vector<std::string> params;
  int last = 10;  // show: the last N events (--json: the API's page)
};

struct rerun_options : client_options {
  std::string run_id;
  std::string from;  // "" = the failed stages
  std::string reason;
  bool allow_changed = false;
};

/// The client of the coordinator `flags` name (the configured one, else
/// the default); none (said on stderr) on a bad config.
std::optional<api_client> connect_client(const client_flags& flags);
/// Says an API error reply; its exit code (2 for 4xx, 4 otherwise).
int reply_failed(const http_reply& r, const client_settings& s);

int launch_command(const launch_options& o);
/// troupe rerun through a coordinator's API (POST /api/runs/{id}/rerun).
int api_rerun_command(const rerun_options& o);
int cancel_command(const client_options& o, const std::string& run_id);
/// troupe status: where the reading commands (runs, show, events, logs) and
/// the client commands would go, and whether a coordinator answers there.
int status_command(const store_command_options& o);
/// troupe pipelines: what a coordinator can launch, with params and schedules.
int pipelines_command(const client_options& o);
int schedule_command(const schedule_options& o);

int api_runs_command(const store_command_options& o);
int api_show_command(const store_command_options& o);
int api_events_command(const store_command_options& o);

} // namespace troupe
