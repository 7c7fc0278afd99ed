// Test and bench support: a crowd of hostile HTTP clients on loopback, and
// the scenario of issue 21 (idle sockets, slowloris, SSE followers, while a
// client launches runs and polls /health and /api/runs), measured from
// outside the coordinator: latencies by this process's clock, threads and
// memory from /proc. Shared by tests/integration/hostile_clients_test.cpp
// and bench/hostile_clients.cpp.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe::load {

struct http_answer {
  int status = 0;  // 0: no answer (connect or read failed, or timed out)
  std::string body;
  double ms = 0;   // from connect to the last byte
};

/// One request on a fresh connection (Connection: close), blocking, with
/// `timeout_ms` for the whole exchange; from `source` (a host-order IPv4
/// loopback address such as 0x7f000005 for 127.0.0.5) when not 0.
http_answer http_call(int port, const std::string& method, const std::string& target,
                      const std::string& body = "", int timeout_ms = 10000,
                      const std::string& token = "", uint32_t source = 0);

/// The raw bytes of one exchange: `request` as given, then everything the
/// server sends until it closes or `timeout_ms` passes.
http_answer raw_call(int port, const std::string& request, int timeout_ms = 10000,
                     uint32_t source = 0);

/// A connected socket from `source` that sends nothing (-1 on failure).
int idle_socket(int port, uint32_t source);

/// A process's figures from /proc.
struct proc_status {
  int threads = 0;
  int64_t rss_kb = 0;
};
proc_status read_proc_status(pid_t pid);

/// Raises this process's open-files soft limit to its hard limit; returns it.
uint64_t raise_open_files();

/// The q-quantile (0..1) of `v` (sorted in place); 0 when empty.
double quantile(std::vector<double>& v, double q);

struct scenario_plan {
  int port = 0;
  pid_t pid = 0;             // the coordinator's
  std::string quick;         // a short pipeline: the launches
  std::string followed;      // a pipeline that runs ~`seconds` and prints: what followers follow
  int idle = 2000;           // connections that send nothing
  int slowloris = 200;       // connections that send one header byte a second
  int followers = 500;       // SSE streams (GET /api/runs/{id}/events/stream)
  int followed_runs = 5;     // runs of `followed` the followers share
  int launches = 100;        // POST /api/runs of `quick`, spread over `seconds`
  int seconds = 12;          // how long the probing lasts
  int probe_gap_ms = 20;     // between two probes
};

struct scenario_result {
  std::vector<double> health_ms;  // GET /health, each probe (no answer: not counted, see missed)
  std::vector<double> runs_ms;    // GET /api/runs?limit=20
  int missed = 0;                 // probes with no 200
  int launched = 0;               // 201s
  int succeeded = 0;              // launched runs that ended succeeded
  int followers_ended = 0;        // streams that saw `event: end` then closed
  int streams_with_end = 0;       // followers whose stream delivered `event: end`
  int reconnects = 0;             // idle or slowloris sockets the server closed (reopened)
  int crowd_open = 0;             // crowd sockets open at the peak
  proc_status before;             // the coordinator before the crowd
  proc_status with_idle;          // after the idle connections (alone) settled
  int max_threads = 0;            // while the crowd was on
  int64_t max_rss_kb = 0;
  std::string problem;            // set when the scenario could not be run as planned
};

/// The crowd opens (idle first, measured alone), the followed runs start,
/// followers and slowloris join, then for `seconds` the probes run and the
/// launches are spread out; then it waits for the runs to end.
scenario_result run_scenario(const scenario_plan& plan);

} // namespace troupe::load
