// The JSON plumbing every HTTP API of troupe shares (the coordinator's,
// `troupe gpu serve`'s): results that are a value or an error, answers,
// and the checked reading of request bodies, each error naming its field.
#pragma once

#include "adapters/http_server/http_server.hpp"

#include <caf/timestamp.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>

namespace troupe {

/// An error the API turns into `{"error": {"code", "message"}}` with `status`.
struct api_error {
  int status = 500;
  std::string code;
  std::string message;
};

template <class T>
struct api_result {
  std::optional<T> value;
  api_error error;
  api_result(T v) : value(std::move(v)) {  // NOLINT: implicit on purpose
  }
  api_result(api_error e) : error(std::move(e)) {  // NOLINT
  }
  explicit operator bool() const {
    return value.has_value();
  }
  T& operator*() {
    return *value;
  }
  T* operator->() {
    return &*value;
  }
};

void send_json(server_response& res, int status, const nlohmann::ordered_json& body);
void send_error(server_response& res, const api_error& e);

/// Answers `r`'s error and says true; false when `r` holds a value.
template <class T>
bool fail(server_response& res, const api_result<T>& r) {
  if (r)
    return false;
  send_error(res, r.error);
  return true;
}

/// The body as a JSON object with only `allowed` keys; an error names what is wrong.
std::optional<api_error> parse_body(const server_request& req, const std::set<std::string>& allowed,
                                    nlohmann::ordered_json& out);
std::optional<api_error> get_string(const nlohmann::ordered_json& body, const char* key,
                                    std::string& out, bool required = false);
std::optional<api_error> get_int(const nlohmann::ordered_json& body, const char* key,
                                 int32_t& out, int32_t lo, int32_t hi);
std::optional<api_error> get_bool(const nlohmann::ordered_json& body, const char* key, bool& out);
/// A duration as text ("90s", "1h"; "0" for none) or a number of seconds.
std::optional<api_error> get_duration(const nlohmann::ordered_json& body, const char* key,
                                      caf::timespan& out);
/// A size as text ("8Gi", "512MB") or a number of bytes.
std::optional<api_error> get_size(const nlohmann::ordered_json& body, const char* key,
                                  int64_t& out);

} // namespace troupe
