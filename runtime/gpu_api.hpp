// The GPU broker's HTTP face (docs/gpu.md, docs/api.md "GPUs"): GET/POST
// /gpu/* and its metrics, for the coordinator's API and `troupe gpu serve`
// alike. Every request to the broker is answered within 2 s (else 503).
#pragma once

#include "messages/gpu_broker.hpp"
#include "runtime/http_api.hpp"

#include <caf/fwd.hpp>

#include <functional>
#include <string>

namespace troupe {

class histogram;

class gpu_service {
public:
  explicit gpu_service(std::function<void(const std::string&)> log);
  /// The broker it asks, once there is one (until then every call is a 503).
  void attach(caf::actor_system& sys, gpu_broker_actor broker);

  api_result<gpu_inventory> info();
  api_result<gpu_policy> policy();
  /// 400 naming what is wrong; 409 while safe mode is on and more than it changes.
  api_result<gpu_policy> set_policy(const gpu_policy& p, const std::string& who);
  /// The broker's events (policy changes, over-use, expiries, …) after an id.
  api_result<gpu_event_list> events(int64_t after);
  api_result<gpu_lease_list> leases();
  api_result<gpu_grant> lease(const gpu_ask& ask);
  api_result<gpu_grant> renew(const std::string& id);
  api_result<gpu_use> release(const std::string& id);
  api_result<gpu_broker_stats> stats();

  /// GET /gpu/info, GET/POST /gpu/policy, GET /gpu/events, GET/POST /gpu/leases,
  /// POST /gpu/leases/{id}/renew, DELETE /gpu/leases/{id}.
  void add_routes(http_server& svr);
  /// The broker's counters, `wait` (observed here) and per-GPU gauges, as
  /// Prometheus text appended to `out`.
  void metrics(std::string& out, histogram& wait);

private:
  caf::actor_system* sys_ = nullptr;
  gpu_broker_actor broker_;
  std::function<void(const std::string&)> log_;
};

} // namespace troupe
