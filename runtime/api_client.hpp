// api_client: the CLI's side of the coordinator's HTTP API (libcurl). The
// client speaks only to the API, never to the database.
//
// The server and token come from, in order: --server, --token/--token-file,
// then $TROUPE_SERVER, $TROUPE_TOKEN/$TROUPE_TOKEN_FILE, then
// ~/.config/troupe/config.yaml (`server:`, `token:`, `token_file:`;
// $XDG_CONFIG_HOME is honoured). Which of a server and a local store a
// reading command uses is runtime/cli/source.hpp's.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

namespace troupe {

/// What a client command was told on its command line; empty: not given.
struct client_flags {
  std::string server;      // --server
  std::string token;       // --token
  std::string token_file;  // --token-file
};

struct client_settings {
  std::string server;  // "http://127.0.0.1:8420"; empty: none configured
  std::string token;
  std::string from;    // where the server setting came from, for messages
};

/// The settings from `flags`, the environment and the config file; `out.server`
/// stays empty when none names a server. An error names the file and the problem.
std::optional<std::string> resolve_client_settings(const client_flags& flags,
                                                   client_settings& out);

/// A token file's first line (trailing space cut) into `token`; an error
/// names the file, and `where` it was named (--token-file, ...).
std::optional<std::string> read_token_file(const std::string& path, const std::string& where,
                                           std::string& token);

/// The config file the settings are read from ("" when neither
/// $XDG_CONFIG_HOME nor $HOME is set).
std::string client_config_file();

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
  /// Whether a coordinator answers at all (GET /health, any HTTP status),
  /// within `timeout_ms`; `why` gets the reason when not.
  bool answers(long timeout_ms, std::string* why = nullptr);
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
                  const std::function<bool(const std::string&)>* on_data,
                  long timeout_ms = 0);
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
