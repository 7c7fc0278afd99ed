// http_worker: runs one attempt of an http stage, with the same interface
// as job_worker (messages/job_worker.hpp) so that the run_supervisor treats
// both alike. Strategies:
//
//   http     one request through the http_client adapter (libcurl multi)
//   browser  headless Chromium as a job_worker subprocess, driven through
//            the DevTools protocol (adapters/browser): the main document's
//            status, final URL and timings are judged by the same rules as
//            http (expect.status; 401/403 blocked, 429 rate_limited, ...);
//            under the stage's timeout; browser_unavailable without Chromium
//   auto     http first; then browser when the answer is blocked (401/403)
//            or a page that renders its content with JavaScript
#pragma once

#include "messages/job_worker.hpp"

#include <caf/fwd.hpp>

#include <memory>
#include <string>

namespace troupe {

class process_runner;
class http_client;

struct http_worker_deps {
  std::shared_ptr<process_runner> runner;
  std::shared_ptr<http_client> client;
  std::string chromium;  // absolute path; empty: not installed
  job_listener_actor listener;  // hears the browser's spawn; may be null
};

job_worker_actor spawn_http_worker(caf::actor_system& sys, http_worker_deps deps);

} // namespace troupe
