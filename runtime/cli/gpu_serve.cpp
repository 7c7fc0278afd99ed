#include "runtime/cli/gpu_serve.hpp"

#include "actors/gpu_broker.hpp"
#include "adapters/http_server/http_server.hpp"
#include "adapters/sampling/gpu_host_lock.hpp"
#include "adapters/sampling/gpu_source.hpp"
#include "runtime/api_client.hpp"
#include "runtime/api_server.hpp"
#include "runtime/coordinator.hpp"
#include "runtime/coordinator_command.hpp"
#include "runtime/gpu_api.hpp"
#include "runtime/gpu_settings.hpp"
#include "runtime/liveness.hpp"
#include "runtime/system.hpp"

#include <caf/all.hpp>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

namespace troupe {

int gpu_serve_command(const gpu_serve_options& o) {
  std::string host;
  int port = 0;
  if (!split_listen(o.listen, host, port)) {
    std::fprintf(stderr, "troupe gpu serve: --listen %s: not HOST:PORT\n", o.listen.c_str());
    return 2;
  }
  auto token = o.token;
  if (!o.token_file.empty())
    if (auto err = read_token_file(o.token_file, "--token-file", token)) {
      std::fprintf(stderr, "troupe gpu serve: %s\n", err->c_str());
      return 2;
    }
  std::string error;
  auto policy = gpu_policy_from_environment(gpu_policy{}, error);
  if (!policy) {
    std::fprintf(stderr, "troupe gpu serve: %s\n", error.c_str());
    return 2;
  }
  caf::actor_system_config cfg;
  register_types(cfg);
  configure_scheduler(cfg);
  caf::actor_system sys{cfg};
  gpu_broker_config bc;
  bc.policy = *policy;
  bc.store_url = o.db;
  bc.node = this_host();
  bc.lock_dir = default_gpu_lock_dir();
  bc.owner = "troupe gpu serve";
  auto broker = spawn_gpu_broker(sys, open_nvml(), bc);
  gpu_service gpu{[](const std::string& line) {
    std::fprintf(stderr, "troupe gpu serve: %s\n", line.c_str());
  }};
  gpu.attach(sys, broker);
  histogram wait;
  http_server svr{http_server_config{}};
  svr.set_pre_routing([&](const server_request& req, server_response& res) {
    if (token.empty() || req.path.rfind("/gpu/", 0) != 0)
      return false;
    auto auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0 && constant_time_equal(auth.substr(7), token))
      return false;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, {401, "unauthorized", "this broker needs 'Authorization: Bearer <token>'"});
    return true;
  });
  svr.add("GET", "/health", [](const server_request&, server_response& res) {
    send_json(res, 200, {{"status", "ok"}, {"service", "troupe gpu serve"}});
  });
  svr.add("GET", "/ready", [&](const server_request&, server_response& res) {
    auto inv = gpu.info();
    send_json(res, inv ? 200 : 503, {{"status", inv ? "ready" : "not_ready"}});
  });
  svr.add("GET", "/metrics", [&](const server_request&, server_response& res) {
    std::string out;
    gpu.metrics(out, wait);
    res.status = 200;
    res.set_content(out, "text/plain; version=0.0.4");
  });
  gpu.add_routes(svr);
  auto bound = svr.bind(host, port, error);
  if (bound < 0) {
    std::fprintf(stderr, "troupe gpu serve: --listen %s: %s\n", o.listen.c_str(), error.c_str());
    caf::anon_send_exit(broker, caf::exit_reason::user_shutdown);
    return 2;
  }
  std::thread io([&] { svr.serve(); });
  std::printf("listening on http://%s:%d\n", host.c_str(), bound);
  std::fflush(stdout);
  auto set = stop_signal_set();
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "troupe gpu serve: %s received: stopping\n", ::strsignal(sig));
  svr.stop();
  io.join();
  caf::anon_send_exit(broker, caf::exit_reason::user_shutdown);
  return 0;
}

} // namespace troupe
