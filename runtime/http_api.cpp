#include "runtime/http_api.hpp"

#include "runtime/coordinator/launch_check.hpp"
#include "runtime/duration.hpp"

namespace troupe {

using json = nlohmann::ordered_json;

void send_json(server_response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", "application/json");
}

void send_error(server_response& res, const api_error& e) {
  send_json(res, e.status, json{{"error", {{"code", e.code}, {"message", e.message}}}});
}

std::optional<api_error> parse_body(const server_request& req, const std::set<std::string>& allowed,
                                    json& out) {
  if (req.body.empty())
    return bad_request("body", "empty; a JSON object was expected");
  out = json::parse(req.body, nullptr, false);
  if (out.is_discarded())
    return bad_request("body", "not valid JSON");
  if (!out.is_object())
    return bad_request("body", "a JSON object was expected");
  for (auto& [k, v] : out.items())
    if (allowed.count(k) == 0) {
      std::string names;
      for (auto& a : allowed)
        names += (names.empty() ? "" : ", ") + a;
      return bad_request(k, "unknown field (fields: " + names + ")");
    }
  return std::nullopt;
}

std::optional<api_error> get_string(const json& body, const char* key, std::string& out,
                                    bool required) {
  if (!body.contains(key)) {
    if (required)
      return bad_request(key, "missing");
    return std::nullopt;
  }
  if (!body[key].is_string())
    return bad_request(key, "must be a string");
  out = body[key].get<std::string>();
  if (required && out.empty())
    return bad_request(key, "must not be empty");
  return std::nullopt;
}

std::optional<api_error> get_int(const json& body, const char* key, int32_t& out, int32_t lo,
                                 int32_t hi) {
  if (!body.contains(key))
    return std::nullopt;
  if (!body[key].is_number_integer())
    return bad_request(key, "must be an integer");
  auto v = body[key].get<int64_t>();
  if (v < lo || v > hi)
    return bad_request(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  out = static_cast<int32_t>(v);
  return std::nullopt;
}

std::optional<api_error> get_bool(const json& body, const char* key, bool& out) {
  if (!body.contains(key))
    return std::nullopt;
  if (!body[key].is_boolean())
    return bad_request(key, "must be true or false");
  out = body[key].get<bool>();
  return std::nullopt;
}

// A duration as text ("90s", "1h"; "0" for none) or a number of seconds.
std::optional<api_error> get_duration(const json& body, const char* key, caf::timespan& out) {
  if (!body.contains(key))
    return std::nullopt;
  auto& v = body[key];
  if (v.is_number() && v.get<double>() >= 0) {
    out = std::chrono::duration_cast<caf::timespan>(std::chrono::duration<double>(v.get<double>()));
    return std::nullopt;
  }
  if (v.is_string()) {
    auto text = v.get<std::string>();
    auto d = text == "0" ? std::optional<caf::timespan>{caf::timespan{0}} : parse_duration(text);
    if (d) {
      out = *d;
      return std::nullopt;
    }
  }
  return bad_request(key, "must be a duration such as \"90s\" or \"1h\" (or seconds)");
}

// A size as text ("8Gi", "512MB") or a number of bytes.
std::optional<api_error> get_size(const json& body, const char* key, int64_t& out) {
  if (!body.contains(key))
    return std::nullopt;
  auto& v = body[key];
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    out = v.get<int64_t>();
    return std::nullopt;
  }
  if (v.is_string())
    if (auto b = parse_size(v.get<std::string>())) {
      out = *b;
      return std::nullopt;
    }
  return bad_request(key, "must be a size such as \"8Gi\" (or bytes)");
}

} // namespace troupe
