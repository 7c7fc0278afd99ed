// The coordinator's HTTP API: JSON over HTTP/1.1, documented in docs/api.md,
// served by adapters/http_server (event-driven: one I/O thread for every
// connection, a few handler threads that may block on store reads, one
// stream thread for SSE and log follows); no CAF scheduler thread is used.
#pragma once

#include <memory>
#include <string>

namespace troupe {

class coordinator;
struct http_server_config;

class api_server {
public:
  api_server(coordinator& c, const http_server_config& cfg);
  ~api_server();
  /// Binds `host`:`port` (0: a free port); the port bound, or -1 with `error` set.
  int bind(const std::string& host, int port, std::string& error);
  /// Serves until stop(); call on a thread of its own (it becomes the I/O thread).
  void serve();
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Compares in time that depends on the lengths only (bearer tokens).
bool constant_time_equal(const std::string& a, const std::string& b);

} // namespace troupe
