// api_client: the CLI's side of the coordinator's HTTP API (libcurl). The
// client speaks only to the API, never to the database.
//
// The server and token come from, in order: --server/--token, then
// TROUPE_SERVER/TROUPE_TOKEN, then ~/.config/troupe/config.yaml
// (`server:` and `token:`; $XDG_CONFIG_HOME is honoured).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

namespace troupe {

struct client_settings {
  std::string server;  // "http://127.0.0.1:8420"; empty: none configured
  std::string token;
  std::string from;    // where the server setting came from, for messages
};

/// The settings from `flag_server`/`flag_token` (empty: not given), the
/// environment and the config file. An error names the file and the problem.
std::optional<std::string> resolve_client_settings(const std::string& flag_server,
                                                   const std::string& flag_token,
                                                   client_settings& out);

struct http_reply {
  long status = 0;  // 0: no answer (error says why)
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string error;
};

class api_client {
public:
  explicit api_client(client_settings s) : s_(std::move(s)) {
  }
  http_reply get(const std::string& path);
  http_reply post(const std::string& path, const std::string& json_body);
  http_reply patch(const std::string& path, const std::string& json_body);
  http_reply del(const std::string& path);
  /// Streams the body to `on_data` as it arrives (false from it stops);
  /// returns the status and, when it is not 200, the body.
  http_reply stream(const std::string& path, const std::map<std::string, std::string>& headers,
                    const std::function<bool(const std::string&)>& on_data);
  const client_settings& settings() const {
    return s_;
  }

private:
  http_reply call(const std::string& method, const std::string& path, const std::string* body,
                  const std::map<std::string, std::string>& headers,
                  const std::function<bool(const std::string&)>* on_data);
  client_settings s_;
};

/// The message of an API error reply: its {"error": {"message"}}, or the
/// status and body, or why there was no answer.
std::string reply_error(const http_reply& r, const std::string& server);

/// Server-Sent Events, parsed from the chunks of a stream.
class sse_parser {
public:
  struct event {
    std::string id;
    std::string type = "message";
    std::string data;
  };
  /// Feeds a chunk; calls `on_event` for each complete event (false stops).
  bool feed(const std::string& chunk, const std::function<bool(const event&)>& on_event);

private:
  std::string buf_;
};

} // namespace troupe
