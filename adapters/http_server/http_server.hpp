// An event-driven HTTP/1.1 server (Boost.Beast's parser on Boost.Asio) for
// the coordinator's API: one I/O thread holds every connection, a few
// handler threads run the routes (which may block on store reads), and one
// stream thread feeds long responses (Server-Sent Events, log follows)
// from `stream_source`s. No client can hold a thread:
//
//   accept ──▶ [over a cap?] ──yes──▶ 503, closed
//                 │ no
//                 ▼
//   read headers (header_timeout, from the connection's start or the end of
//   the previous response) ──late──▶ closed
//                 ▼
//   read body (body_timeout; over max_body: 413 naming the limit)
//                 ▼
//   route: inline (route::inline_) or on a handler thread (queue bounded:
//   over it, 503) ──▶ response written (write_timeout)
//                 │ a stream: chunked, fed by the stream thread; a client
//                 ▼ that stops reading is dropped at stream_buffer bytes
//   keep-alive: next request, or closed
//
// Only this folder's .cpp includes Boost; routes see the plain structs below.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace troupe {

/// The server's limits; every one is a coordinator setting (docs/coordinator.md).
struct http_server_config {
  size_t max_connections = 4096;             // open connections in all
  size_t max_connections_per_client = 1024;  // from one client address
  size_t max_body = 1 << 20;                 // request bodies, whatever their type
  size_t max_header = 16 << 10;              // request line and headers
  std::chrono::milliseconds header_timeout{10000};  // a request's headers, complete
  std::chrono::milliseconds body_timeout{30000};    // its body, complete
  std::chrono::milliseconds write_timeout{30000};   // a response's bytes, taken by the client
  int handler_threads = 2;
  size_t max_queued = 1024;           // requests waiting for a handler thread
  size_t stream_buffer = 1 << 20;     // bytes a stream may have unsent before it is dropped
  std::chrono::milliseconds stream_tick{250};  // the stream thread's longest sleep
};

/// One request, read whole. Header names are lower case.
struct server_request {
  std::string method;
  std::string target;  // as sent: path and query
  std::string path;    // percent-decoded
  std::multimap<std::string, std::string> query;  // percent-decoded
  std::map<std::string, std::string> headers;
  std::string body;
  std::string remote_addr;
  std::vector<std::string> matches;  // the route's regex groups; [0] is the path

  bool has_param(const std::string& key) const {
    return query.count(key) > 0;
  }
  /// The first value of `key`, or "".
  std::string get_param_value(const std::string& key) const;
  /// The header's value, or "".
  std::string get_header_value(const std::string& name) const;
};

/// The long part of a response: pulled by the stream thread.
class stream_source {
public:
  virtual ~stream_source() = default;
  /// Appends what is new to `out`; returns false when the stream has ended
  /// (what is in `out` is still sent). Called on the stream thread, often:
  /// keep it cheap when nothing changed. May block briefly (store, files).
  virtual bool pull(std::string& out) = 0;
};

struct server_response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type = "application/json";
  std::string body;
  /// Set for a stream: the body is sent chunked, as `stream` yields it.
  std::shared_ptr<stream_source> stream;

  void set_header(const std::string& name, const std::string& value) {
    headers.emplace_back(name, value);
  }
  void set_content(std::string text, std::string type) {
    body = std::move(text);
    content_type = std::move(type);
  }
};

/// What the server counts, for /metrics.
struct http_server_stats {
  int64_t open = 0;        // connections now
  int64_t streams = 0;     // of which streaming
  int64_t accepted = 0;    // since start
  int64_t refused = 0;     // over a connection cap (503)
  int64_t timed_out = 0;   // closed for a late header, body or write
  int64_t requests = 0;
  int64_t busy = 0;        // 503 because the handler queue was full
  int64_t too_large = 0;   // 413 and 431
};

class http_server {
public:
  using handler = std::function<void(const server_request&, server_response&)>;

  explicit http_server(http_server_config cfg);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Routes are tried in the order added; `pattern` must match the whole
  /// path. An `inline_` route runs on the I/O thread: only for handlers that
  /// never block (/health).
  void add(const std::string& method, const std::string& pattern, handler h,
           bool inline_ = false);
  /// Runs before routing, on the I/O thread (auth): true when it answered.
  void set_pre_routing(std::function<bool(const server_request&, server_response&)> f);
  /// Answers a path no route matches (404) or a known path with another method (405).
  void set_not_found(handler h);

  /// Binds `host`:`port` (0: a free port); the port bound, or -1 with `error` set.
  int bind(const std::string& host, int port, std::string& error);
  /// Serves until stop(); runs the I/O thread here and starts the others.
  void serve();
  /// Stops accepting, closes every connection, joins the threads serve() started.
  void stop();
  /// Wakes the stream thread now (something a stream follows changed).
  void poke_streams();
  http_server_stats stats() const;

  struct impl;  // (named here so that the .cpp's connections can hold it)

private:
  std::shared_ptr<impl> impl_;
};

/// Raises this process's open-files soft limit to its hard limit; the new
/// soft limit (or the old one when it cannot be raised).
uint64_t raise_open_files_limit();

} // namespace troupe
