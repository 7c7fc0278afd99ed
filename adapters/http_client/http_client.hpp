// http_client: HTTP requests through libcurl's multi interface on a thread
// of its own, so that no caller ever waits on a socket. The body streams
// into a file; the callback runs on the client's thread (typically it
// caf::anon_sends to an actor). The only header that callers see; curl.h
// stays in http_client.cpp.
#pragma once

#include "messages/job_worker.hpp"

#include <caf/timestamp.hpp>

#include <functional>
#include <memory>
#include <string>

namespace troupe {

struct http_call {
  http_request request;
  caf::timespan timeout{0};  // whole request; 0: none
  std::string body_path;     // created or truncated, fsynced before the callback
};

/// How a call ended. A response of any status is `responded`; failure is
/// set only when no response came (timeout, network).
struct http_outcome {
  bool responded = false;
  failure_code failure = failure_code::none;  // timeout | network | unknown
  std::string error;                          // curl's message, for people
  http_stats stats;
  caf::timespan retry_after{0};  // from a Retry-After header (seconds or HTTP date)
  std::string head;              // the first 64 KiB of the body, for inspection
};

class http_client {
public:
  http_client();
  ~http_client();

  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Returns at once; `done` runs on the client's thread when the call ends.
  void fetch(http_call call, std::function<void(http_outcome)> done);

  /// Runs `work` on the client's thread (for small file work that belongs
  /// off the scheduler, like reading back a page Chromium wrote).
  void post(std::function<void()> work);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The value of a Retry-After header: delay-seconds or an HTTP date
/// (relative to `now`); nothing when it is neither.
caf::timespan parse_retry_after(const std::string& value, caf::timestamp now);

} // namespace troupe
