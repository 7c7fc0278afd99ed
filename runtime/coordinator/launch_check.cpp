#include "runtime/coordinator/launch_check.hpp"

#include "messages/errors.hpp"
#include "runtime/host_env.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

namespace troupe {

api_error bad_request(const std::string& field, const std::string& message) {
  return {400, "bad_request", field + ": " + message};
}

bool env_name_ok(const std::string& k) {
  if (k.empty() || k.size() > 256 || std::isdigit(static_cast<unsigned char>(k[0])))
    return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

namespace {

std::optional<api_error> check_env(const pipeline_def& p, const std::string& k) {
  auto field = "env." + k;
  if (!env_name_ok(k))
    return bad_request(field, "not a variable name ([A-Za-z_][A-Za-z0-9_]*)");
  if (is_troupe_secret(k))
    return bad_request(field, "TROUPE_* and PGPASS* are troupe's own; no stage receives them");
  if (is_loader_or_shell(k))
    return bad_request(field, "changes what code a stage loads or how its shell starts; "
                              "an API caller may never set it");
  if (p.api_env.count(k) == 0) {
    std::string listed;
    for (auto& n : p.api_env)
      listed += (listed.empty() ? "" : ", ") + n;
    return bad_request(field, "pipeline '" + p.name + "' does not list it in api_env (api_env: "
                                + (listed.empty() ? "none" : listed) + ")");
  }
  return std::nullopt;
}

} // namespace

api_result<checked_launch> check_launch(const pipeline_def& p, const launch_request& req,
                                        const std::map<std::string, std::string>& environment) {
  checked_launch out;
  for (auto& name : req.enable) {
    auto it = std::find_if(p.stages.begin(), p.stages.end(),
                           [&](const stage_def& s) { return s.name == name; });
    if (it == p.stages.end())
      return bad_request("enable", "pipeline '" + p.name + "' has no stage '" + name + "'");
    if (!it->optional)
      return bad_request("enable", "stage '" + name + "' is not optional; it runs anyway");
    out.enabled.insert(name);
  }
  for (auto& [k, v] : req.env)
    if (auto err = check_env(p, k))
      return *err;
  auto params = resolve_params(p, req.params, environment, param_wording::api);
  if (!params)
    return bad_request("params", describe(params.error()));
  out.params = std::move(*params);
  return out;
}

launch_request launch_request_of(const schedule_row& s) {
  launch_request req;
  req.pipeline = s.pipeline;
  req.priority = s.priority;
  req.launched_by = "schedule";
  auto options = nlohmann::json::parse(s.options.empty() ? "{}" : s.options, nullptr, false);
  if (!options.is_object())
    return req;
  if (options.contains("enable") && options["enable"].is_array())
    for (auto& e : options["enable"])
      if (e.is_string())
        req.enable.push_back(e.get<std::string>());
  if (options.contains("env") && options["env"].is_object())
    for (auto& [k, v] : options["env"].items())
      if (v.is_string())
        req.env[k] = v.get<std::string>();
  if (options.contains("params") && options["params"].is_object())
    for (auto& [k, v] : options["params"].items())
      req.params[k] = v.is_string() ? v.get<std::string>() : v.dump();
  return req;
}

} // namespace troupe
