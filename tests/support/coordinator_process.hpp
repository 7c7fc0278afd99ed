// Test support: a real `troupe coordinator` process on a free loopback port,
// and a real HTTP client for its API (cpp-httplib's).
#pragma once

#include "tests/support/troupe_process.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace troupe::test {

class coordinator_process {
public:
  /// Starts `troupe coordinator ARGS --listen 127.0.0.1:0` in `dir` and
  /// waits for its "listening on" line (a test failure after 20 s).
  coordinator_process(std::vector<std::string> args, const std::string& dir,
                      const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), "coordinator");
    args.push_back("--listen");
    args.push_back("127.0.0.1:0");
    proc_ = std::make_unique<troupe_process>(args, dir, env);
    bool up = proc_->wait_until(
      [&] {
        auto out = read_file(proc_->out_path());
        auto at = out.find("listening on http://127.0.0.1:");
        if (at == std::string::npos || out.find('\n', at) == std::string::npos)
          return false;
        port_ = std::stoi(out.substr(at + 30));
        return true;
      },
      std::chrono::seconds(20));
    EXPECT_TRUE(up) << "the coordinator did not start:\n" << read_file(proc_->err_path());
  }
  int port() const {
    return port_;
  }
  pid_t pid() const {
    return proc_->pid();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }
  troupe_process& process() {
    return *proc_;
  }
  std::string log() const {
    return read_file(proc_->err_path());
  }
  /// A client; `token` is sent as a bearer token when not empty.
  std::unique_ptr<httplib::Client> client(const std::string& token = "") const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_read_timeout(60, 0);
    if (!token.empty())
      c->set_bearer_token_auth(token.c_str());
    return c;
  }

private:
  std::unique_ptr<troupe_process> proc_;
  int port_ = 0;
};

inline nlohmann::json body_json(const httplib::Result& r) {
  if (!r)
    return nullptr;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

/// Polls GET /api/runs/{id} until the run has ended (a test failure after `limit`).
inline nlohmann::json wait_run_ended(httplib::Client& c, const std::string& id,
                                     std::chrono::seconds limit = std::chrono::seconds(60)) {
  auto end = std::chrono::steady_clock::now() + limit;
  nlohmann::json run;
  while (std::chrono::steady_clock::now() < end) {
    run = body_json(c.Get(("/api/runs/" + id).c_str()));
    auto st = run.is_object() ? run.value("status", "") : "";
    if (st != "queued" && st != "running" && !st.empty())
      return run;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "run " << id << " did not end: " << run.dump();
  return run;
}

} // namespace troupe::test
