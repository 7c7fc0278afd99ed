#include "runtime/gpu_api.hpp"

#include "messages/json.hpp"
#include "runtime/coordinator.hpp"
#include "runtime/coordinator/launch_check.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace troupe {

using json = nlohmann::ordered_json;

gpu_service::gpu_service(std::function<void(const std::string&)> log) : log_(std::move(log)) {
}

void gpu_service::attach(caf::actor_system& sys, gpu_broker_actor broker) {
  sys_ = &sys;
  broker_ = std::move(broker);
}

namespace {

// One request to the broker, answered within 2 s; none: 503 saying so.
template <class T, class... Ts>
api_result<T> ask_broker(caf::actor_system* sys, const gpu_broker_actor& broker, Ts&&... xs) {
  if (sys == nullptr || !broker)
    return api_error{503, "gpu_unavailable", "this node has no GPU broker"};
  caf::scoped_actor self{*sys};
  std::optional<T> got;
  std::string why;
  self->request(broker, std::chrono::seconds(2), std::forward<Ts>(xs)...)
    .receive([&](T& x) { got = std::move(x); }, [&](caf::error& e) { why = sys->render(e); });
  if (!got)
    return api_error{503, "gpu_unavailable",
                     "the GPU broker did not answer within 2 s (" + why + ")"};
  return std::move(*got);
}

} // namespace

api_result<gpu_inventory> gpu_service::info() {
  return ask_broker<gpu_inventory>(sys_, broker_, snapshot_atom_v);
}

api_result<gpu_policy> gpu_service::policy() {
  return ask_broker<gpu_policy>(sys_, broker_, policy_atom_v);
}

api_result<gpu_policy> gpu_service::set_policy(const gpu_policy& p, const std::string& who) {
  auto refused = ask_broker<std::string>(sys_, broker_, policy_atom_v, p, who);
  if (!refused)
    return refused.error;
  if (refused->rfind("safe mode is on", 0) == 0)
    return api_error{409, "conflict", *refused};
  if (!refused->empty()) {
    auto colon = refused->find(':');
    return bad_request(colon == std::string::npos ? "policy" : refused->substr(0, colon),
                       colon == std::string::npos ? *refused : refused->substr(colon + 2));
  }
  log_("gpu policy changed by " + who + ": safe_mode " + (p.safe_mode ? "on" : "off")
       + ", default_ttl "
       + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(p.default_ttl).count())
       + " s, reserve " + std::to_string(p.reserve_bytes >> 20) + " MiB, max_leases_per_holder "
       + std::to_string(p.max_leases_per_holder));
  return p;
}

api_result<gpu_event_list> gpu_service::events(int64_t after) {
  return ask_broker<gpu_event_list>(sys_, broker_, events_atom_v, after);
}

api_result<gpu_lease_list> gpu_service::leases() {
  return ask_broker<gpu_lease_list>(sys_, broker_, leases_atom_v);
}

api_result<gpu_grant> gpu_service::lease(const gpu_ask& ask) {
  return ask_broker<gpu_grant>(sys_, broker_, lease_atom_v, ask);
}

api_result<gpu_grant> gpu_service::renew(const std::string& id) {
  return ask_broker<gpu_grant>(sys_, broker_, renew_atom_v, id);
}

api_result<gpu_use> gpu_service::release(const std::string& id) {
  return ask_broker<gpu_use>(sys_, broker_, release_atom_v, id);
}

api_result<gpu_broker_stats> gpu_service::stats() {
  return ask_broker<gpu_broker_stats>(sys_, broker_, stats_atom_v);
}

void gpu_service::add_routes(http_server& svr) {
  svr.add("GET", "/gpu/info", [this](const server_request&, server_response& res) {
    auto inv = info();
    if (fail(res, inv))
      return;
    send_json(res, 200, json(*inv));
  });
  svr.add("GET", "/gpu/policy", [this](const server_request&, server_response& res) {
    auto p = policy();
    if (fail(res, p))
      return;
    send_json(res, 200, json(*p));
  });
  svr.add("POST", "/gpu/policy", [this](const server_request& req, server_response& res) {
    json body;
    auto now = policy();
    if (fail(res, now))
      return;
    auto p = *now;
    std::optional<api_error> err = parse_body(
      req, {"safe_mode", "default_ttl", "reserve", "max_leases_per_holder", "release_grace"}, body);
    if (!err)
      err = get_bool(body, "safe_mode", p.safe_mode);
    if (!err)
      err = get_duration(body, "default_ttl", p.default_ttl);
    if (!err)
      err = get_size(body, "reserve", p.reserve_bytes);
    if (!err)
      err = get_int(body, "max_leases_per_holder", p.max_leases_per_holder, 0, 1000000);
    if (!err)
      err = get_duration(body, "release_grace", p.release_grace);
    if (err)
      return send_error(res, *err);
    auto set = set_policy(p, "the API (from " + req.remote_addr + ")");
    if (fail(res, set))
      return;
    send_json(res, 200, json(*set));
  });
  svr.add("GET", "/gpu/events", [this](const server_request& req, server_response& res) {
    int64_t after = 0;
    if (req.has_param("after")) {
      auto text = req.get_param_value("after");
      char* end = nullptr;
      errno = 0;
      after = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno != 0 || after < 0)
        return send_error(res, bad_request("after", "must be an event id (0 or more), not '"
                                                      + text + "'"));
    }
    auto got = events(after);
    if (fail(res, got))
      return;
    send_json(res, 200, {{"events", got->events}});
  });
  svr.add("GET", "/gpu/leases", [this](const server_request&, server_response& res) {
    auto all = leases();
    if (fail(res, all))
      return;
    send_json(res, 200, {{"leases", all->leases}});
  });
  svr.add("POST", "/gpu/leases", [this](const server_request& req, server_response& res) {
    json body;
    gpu_ask ask;
    int64_t memory = 0;
    caf::timespan ttl{-1};
    std::optional<api_error> err =
      parse_body(req, {"holder", "gpus", "memory", "ttl", "priority", "wait", "pid"}, body);
    if (!err)
      err = get_string(body, "holder", ask.holder, true);
    if (!err)
      err = get_int(body, "gpus", ask.gpus, 0, 64);
    if (!err)
      err = get_size(body, "memory", memory);
    if (!err)
      err = get_duration(body, "ttl", ttl);
    if (!err)
      err = get_int(body, "priority", ask.priority, -1000, 1000);
    if (!err)
      err = get_bool(body, "wait", ask.wait);
    if (!err)
      err = get_int(body, "pid", ask.pid, 0, INT32_MAX);
    if (!err && (ask.gpus > 0) == (memory > 0))
      err = bad_request("gpus", "give gpus (whole GPUs) or memory (a share of one), one of them");
    if (err)
      return send_error(res, *err);
    ask.memory_bytes = memory;
    if (ttl.count() >= 0)
      ask.ttl_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count();
    auto g = lease(ask);
    if (fail(res, g))
      return;
    if (g->outcome == "denied")
      return send_error(res, {409, "denied", g->reason});
    if (g->outcome == "granted")
      res.set_header("Location", "/gpu/leases/" + g->lease_id);
    send_json(res, g->outcome == "granted" ? 201 : 202, json(*g));
  });
  svr.add("POST", R"(/gpu/leases/([^/]+)/renew)",
          [this](const server_request& req, server_response& res) {
            auto g = renew(req.matches[1]);
            if (fail(res, g))
              return;
            if (g->outcome == "denied")
              return send_error(res, {404, "not_found", g->reason});
            send_json(res, 200, json(*g));
          });
  svr.add("DELETE", R"(/gpu/leases/([^/]+))",
          [this](const server_request& req, server_response& res) {
            std::string id = req.matches[1];
            auto all = leases();
            if (fail(res, all))
              return;
            bool known = std::any_of(all->leases.begin(), all->leases.end(),
                                     [&](const gpu_grant& g) { return g.lease_id == id; });
            if (!known)
              return send_error(res, {404, "not_found", "no lease " + id});
            auto u = release(id);
            if (fail(res, u))
              return;
            send_json(res, 200,
                      {{"id", id},
                       {"released", true},
                       {"peak_gpu_memory_bytes", u->peak_bytes},
                       {"gpu_seconds", u->gpu_seconds}});
          });
}

// The broker's counters and each GPU's memory and utilisation, labelled by
// UUID (the identity; the index is display only).
void gpu_service::metrics(std::string& out, histogram& wait) {
  auto gauge = [&](const char* name, const char* help, int64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " "
           + std::to_string(v) + "\n";
  };
  auto counter = [&](const char* name, const char* help, int64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name
           + " " + std::to_string(v) + "\n";
  };
  if (auto s = stats()) {
    for (auto w : s->wait_seconds)
      wait.observe(w);
    gauge("troupe_gpu_leases_active", "GPU leases granted and not yet freed.", s->active);
    gauge("troupe_gpu_leases_queued", "GPU lease requests waiting.", s->queued);
    counter("troupe_gpu_lease_granted_total", "GPU leases granted.", s->granted);
    counter("troupe_gpu_lease_denied_total", "GPU lease requests denied.", s->denied);
    counter("troupe_gpu_lease_expired_total", "GPU leases whose TTL passed unrenewed.", s->expired);
    counter("troupe_gpu_lease_overuse_total",
            "GPU leases whose processes used more memory than booked.", s->overuse);
  }
  wait.render(out, "troupe_gpu_lease_wait_seconds", "Time from a GPU lease request to its grant.");
  auto inv = info();
  if (!inv || inv->gpus.empty())
    return;
  auto series = [&](const char* name, const char* help, auto value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
    for (auto& g : inv->gpus)
      out += std::string(name) + "{uuid=\"" + g.uuid + "\",index=\"" + std::to_string(g.index)
             + "\"} " + value(g) + "\n";
  };
  series("troupe_gpu_memory_used_bytes", "GPU memory in use (NVML).",
         [](const gpu_figures& g) { return std::to_string(g.mem_used_bytes); });
  series("troupe_gpu_memory_total_bytes", "GPU memory in all (NVML).",
         [](const gpu_figures& g) { return std::to_string(g.mem_total_bytes); });
  series("troupe_gpu_utilization_percent", "GPU utilisation (NVML).",
         [](const gpu_figures& g) { return std::to_string(g.util_percent); });
}

} // namespace troupe
