#include "runtime/cli/gpu_command.hpp"

#include "actors/running_order.hpp"
#include "runtime/client_commands.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace troupe {

namespace {

using json = nlohmann::ordered_json;

std::string text(const json& v) {
  return v.is_null() ? "-" : v.is_string() ? v.get<std::string>() : v.dump();
}

std::string mib(const json& bytes) {
  return bytes.is_number() ? std::to_string(bytes.get<int64_t>() >> 20) + " MiB" : "-";
}

// GET or POST `path`; the answer's document, printed raw with --json.
int call(api_client& api, const std::string& method, const std::string& path, const json& body,
         bool raw, const std::function<void(const json&)>& show, long want = 200) {
  auto r = method == "GET"    ? api.get(path)
           : method == "DELETE" ? api.del(path)
                                : api.post(path, body.dump());
  if (r.status != want && !(want == 201 && r.status == 202))
    return reply_failed(r, api.settings());
  if (raw) {
    std::fputs(r.body.c_str(), stdout);
    return 0;
  }
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_discarded())
    return reply_failed(r, api.settings());
  show(j);
  return 0;
}

void show_info(const json& j) {
  if (!j["available"].get<bool>()) {
    std::printf("no GPUs: %s\n", text(j["reason"]).c_str());
    return;
  }
  std::printf("driver %s, safe mode %s\n", text(j["driver_version"]).c_str(),
              j["safe_mode"].get<bool>() ? "on (leases denied)" : "off");
  std::printf("%-5s %-24s %-16s %-19s %-5s %-5s %-7s %-11s %s\n", "INDEX", "UUID", "NAME",
              "MEMORY USED/TOTAL", "UTIL", "TEMP", "POWER", "MIG", "PROCESSES");
  for (auto& g : j["gpus"]) {
    std::string procs;
    for (auto& p : g["processes"])
      procs += (procs.empty() ? "" : ", ") + text(p["pid"]) + " (" + mib(p["used_bytes"]) + ")";
    std::printf("%-5s %-24s %-16s %-19s %-5s %-5s %-7s %-11s %s\n", text(g["index"]).c_str(),
                text(g["uuid"]).c_str(), text(g["name"]).c_str(),
                (mib(g["mem_used_bytes"]) + "/" + mib(g["mem_total_bytes"])).c_str(),
                (text(g["util_percent"]) + "%").c_str(), text(g["temperature_c"]).c_str(),
                g["power_watts"].is_null() ? "-" : (text(g["power_watts"]) + "W").c_str(),
                text(g["mig_mode"]).c_str(), procs.empty() ? "-" : procs.c_str());
  }
  for (auto& h : j["held_elsewhere"])
    std::printf("owned by another troupe GPU broker on this host: %s\n", text(h).c_str());
}

void show_leases(const json& j) {
  std::printf("%-10s %-10s %-28s %-24s %-10s %s\n", "ID", "STATE", "HOLDER", "GPUS", "MEMORY",
              "EXPIRES");
  for (auto& l : j["leases"]) {
    std::string gpus;
    for (auto& g : l["gpus"])
      gpus += (gpus.empty() ? "" : ",") + g.get<std::string>();
    std::printf("%-10s %-10s %-28s %-24s %-10s %s\n", text(l["id"]).c_str(),
                text(l["state"]).c_str(), text(l["holder"]).c_str(),
                gpus.empty() ? "-" : gpus.c_str(), mib(l["memory_bytes"]).c_str(),
                text(l["expires_at"]).c_str());
  }
  if (j["leases"].empty())
    std::printf("(no leases)\n");
}

void show_policy(const json& j) {
  std::printf("safe_mode              %s\ndefault_ttl            %s s\nreserve                %s\n"
              "max_leases_per_holder  %s\nrelease_grace          %s s\n",
              j["safe_mode"].get<bool>() ? "on" : "off", text(j["default_ttl_s"]).c_str(),
              mib(j["reserve_bytes"]).c_str(), text(j["max_leases_per_holder"]).c_str(),
              text(j["release_grace_s"]).c_str());
}

void show_events(const json& j) {
  for (auto& e : j["events"])
    std::printf("%-6s %s  %-14s %s\n", text(e["id"]).c_str(), text(e["at"]).c_str(),
                text(e["kind"]).c_str(), text(e["message"]).c_str());
  if (j["events"].empty())
    std::printf("(no events)\n");
}

} // namespace

int gpu_command(const gpu_options& o) {
  auto conn = connect_client(o);
  if (!conn)
    return exit_code::usage;
  auto& api = *conn;
  if (o.action == "info")
    return call(api, "GET", "/gpu/info", nullptr, o.json, show_info);
  if (o.action == "leases")
    return call(api, "GET", "/gpu/leases", nullptr, o.json, show_leases);
  if (o.action == "events")
    return call(api, "GET", "/gpu/events?after=" + std::to_string(o.after), nullptr, o.json,
                show_events);
  if (o.action == "release")
    return call(api, "DELETE", "/gpu/leases/" + o.id, nullptr, o.json, [&](const json& j) {
      std::printf("lease %s released (GPU-seconds %s, peak GPU memory %s)\n", o.id.c_str(),
                  text(j["gpu_seconds"]).c_str(), mib(j["peak_gpu_memory_bytes"]).c_str());
    });
  if (o.action == "lease") {
    if ((o.gpus > 0) == !o.memory.empty()) {
      std::fprintf(stderr, "troupe: gpu lease: give --gpus N or --memory SIZE, one of them\n");
      return exit_code::usage;
    }
    json body{{"holder", o.holder}};
    if (o.gpus > 0)
      body["gpus"] = o.gpus;
    else
      body["memory"] = o.memory;
    if (!o.ttl.empty())
      body["ttl"] = o.ttl;
    if (o.priority != 0)
      body["priority"] = o.priority;
    if (o.wait)
      body["wait"] = true;
    return call(
      api, "POST", "/gpu/leases", body, o.json,
      [](const json& j) {
        std::printf("%s\n", text(j["id"]).c_str());
        std::string gpus;
        for (auto& g : j["gpus"])
          gpus += (gpus.empty() ? "" : ",") + g.get<std::string>();
        if (j["state"] == "queued")
          std::fprintf(stderr, "lease %s queued: %s\n", text(j["id"]).c_str(),
                       text(j["reason"]).c_str());
        else
          std::fprintf(stderr, "lease %s granted: %s, %s per GPU, until %s\n",
                       text(j["id"]).c_str(), gpus.c_str(), mib(j["memory_bytes"]).c_str(),
                       text(j["expires_at"]).c_str());
      },
      201);
  }
  if (o.action == "policy") {
    json body = json::object();
    if (!o.safe_mode.empty()) {
      if (o.safe_mode != "on" && o.safe_mode != "off") {
        std::fprintf(stderr, "troupe: gpu policy: --safe-mode %s: not on or off\n",
                     o.safe_mode.c_str());
        return exit_code::usage;
      }
      body["safe_mode"] = o.safe_mode == "on";
    }
    if (!o.default_ttl.empty())
      body["default_ttl"] = o.default_ttl;
    if (!o.reserve.empty())
      body["reserve"] = o.reserve;
    if (!o.release_grace.empty())
      body["release_grace"] = o.release_grace;
    if (o.max_leases_per_holder >= 0)
      body["max_leases_per_holder"] = o.max_leases_per_holder;
    if (body.empty())
      return call(api, "GET", "/gpu/policy", nullptr, o.json, show_policy);
    return call(api, "POST", "/gpu/policy", body, o.json, show_policy);
  }
  std::fprintf(stderr, "troupe: gpu: unknown action '%s'\n", o.action.c_str());
  return exit_code::usage;
}

} // namespace troupe
