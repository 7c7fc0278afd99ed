// The coordinator's HTTP API (cpp-httplib): JSON over HTTP/1.1, documented
// in docs/api.md. Requests are served on the server's own threads, which may
// block (store reads, waiting for events); no CAF scheduler thread is used.
#pragma once

#include <memory>
#include <string>

namespace troupe {

class coordinator;

class api_server {
public:
  explicit api_server(coordinator& c);
  ~api_server();
  /// Binds `host`:`port` (0: a free port); the port bound, or -1 with `error` set.
  int bind(const std::string& host, int port, std::string& error);
  /// Serves until stop(); call on a thread of its own.
  void serve();
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Compares in time that depends on the lengths only (bearer tokens).
bool constant_time_equal(const std::string& a, const std::string& b);

} // namespace troupe
