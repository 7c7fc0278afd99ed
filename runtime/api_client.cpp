#include "runtime/api_client.hpp"

#include <curl/curl.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace troupe {

std::string client_config_file() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0')
    return std::string(xdg) + "/troupe/config.yaml";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return std::string(home) + "/.config/troupe/config.yaml";
  return {};
}

namespace {

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

} // namespace

// A token file's first line; an error names the file and `where` it was named.
std::optional<std::string> read_token_file(const std::string& path, const std::string& where,
                                           std::string& token) {
  std::ifstream in(path);
  if (!in)
    return where + " " + path + ": " + std::strerror(errno);
  std::getline(in, token);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
    token.pop_back();
  if (token.empty())
    return where + " " + path + ": is empty";
  return std::nullopt;
}

std::optional<std::string> resolve_client_settings(const client_flags& flags,
                                                   client_settings& out) {
  std::string file_server, file_token, file_token_file;
  auto file = client_config_file();
  struct stat st{};
  if (!file.empty() && ::stat(file.c_str(), &st) == 0) {
    try {
      auto root = YAML::LoadFile(file);
      if (!root.IsNull() && !root.IsMap())
        return file + ": a map with server: and token: was expected";
      for (auto it = root.begin(); root.IsMap() && it != root.end(); ++it) {
        auto key = it->first.as<std::string>();
        if (key == "server")
          file_server = it->second.as<std::string>();
        else if (key == "token")
          file_token = it->second.as<std::string>();
        else if (key == "token_file")
          file_token_file = it->second.as<std::string>();
        else
          return file + ":" + std::to_string(it->first.Mark().line + 1) + ": " + key
                 + ": unknown setting (settings: server, token, token_file)";
      }
    } catch (const YAML::Exception& e) {
      return file + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg;
    }
  }
  auto env_server = env_or_empty("TROUPE_SERVER");
  if (!flags.server.empty()) {
    out.server = flags.server;
    out.from = "--server";
  } else if (!env_server.empty()) {
    out.server = env_server;
    out.from = "$TROUPE_SERVER";
  } else if (!file_server.empty()) {
    out.server = file_server;
    out.from = file;
  }
  // The token: the first of these that is given, a file read when named.
  const std::pair<std::string, std::string> tokens[] = {
    {flags.token, ""},
    {flags.token_file, "--token-file"},
    {env_or_empty("TROUPE_TOKEN"), ""},
    {env_or_empty("TROUPE_TOKEN_FILE"), "$TROUPE_TOKEN_FILE"},
    {file_token, ""},
    {file_token_file, file + ": token_file:"}};
  for (auto& [value, file_from] : tokens) {
    if (value.empty())
      continue;
    if (file_from.empty())
      out.token = value;
    else if (auto err = read_token_file(value, file_from, out.token))
      return err;
    break;
  }
  while (!out.server.empty() && out.server.back() == '/')
    out.server.pop_back();
  if (!out.server.empty() && out.server.find("://") == std::string::npos)
    out.server = "http://" + out.server;
  return std::nullopt;
}

namespace {

struct transfer {
  std::string body;
  std::map<std::string, std::string> headers;
  const std::function<bool(const std::string&)>* on_data = nullptr;
  long status = 0;
  CURL* curl = nullptr;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<transfer*>(user);
  size_t len = size * n;
  if (t->on_data != nullptr) {
    if (t->status == 0)
      curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
    if (t->status == 200)
      return (*t->on_data)(std::string(data, len)) ? len : 0;
  }
  t->body.append(data, len);
  return len;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<transfer*>(user);
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    auto key = line.substr(0, colon);
    std::transform(key.begin(), key.end(), key.begin(), ::tolower);
    auto value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' '))
      value.erase(0, 1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n'))
      value.pop_back();
    t->headers[key] = value;
  }
  return size * n;
}

} // namespace

http_reply api_client::call(const std::string& method, const std::string& path,
                            const std::string* body,
                            const std::map<std::string, std::string>& headers,
                            const std::function<bool(const std::string&)>* on_data,
                            long timeout_ms) {
  static const bool ready = curl_global_init(CURL_GLOBAL_DEFAULT) == 0;
  http_reply out;
  CURL* curl = ready ? curl_easy_init() : nullptr;
  if (curl == nullptr) {
    out.error = "libcurl could not be initialised";
    return out;
  }
  transfer t;
  t.on_data = on_data;
  t.curl = curl;
  auto url = s_.server + path;
  curl_slist* list = nullptr;
  if (!s_.token.empty())
    list = curl_slist_append(list, ("Authorization: Bearer " + s_.token).c_str());
  if (body != nullptr)
    list = curl_slist_append(list, "Content-Type: application/json");
  for (auto& [k, v] : headers)
    list = curl_slist_append(list, (k + ": " + v).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (timeout_ms > 0) {
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  } else {
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    if (on_data == nullptr)
      curl_easy_setopt(curl, CURLOPT_TIMEOUT, 120L);
  }
  if (body != nullptr) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
  }
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
  auto rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && on_data != nullptr && out.status == 200)) {
    out.status = out.status == 200 ? out.status : 0;
    out.error = err[0] != '\0' ? err : curl_easy_strerror(rc);
  }
  out.body = std::move(t.body);
  out.headers = std::move(t.headers);
  curl_slist_free_all(list);
  curl_easy_cleanup(curl);
  return out;
}

bool api_client::answers(long timeout_ms, std::string* why) {
  auto r = call("GET", "/health", nullptr, {}, nullptr, timeout_ms);
  if (r.status == 0 && why != nullptr)
    *why = r.error;
  return r.status != 0;
}

http_reply api_client::get(const std::string& path) {
  return call("GET", path, nullptr, {}, nullptr);
}

http_reply api_client::post(const std::string& path, const std::string& json_body) {
  return call("POST", path, &json_body, {}, nullptr);
}

http_reply api_client::patch(const std::string& path, const std::string& json_body) {
  return call("PATCH", path, &json_body, {}, nullptr);
}

http_reply api_client::del(const std::string& path) {
  return call("DELETE", path, nullptr, {}, nullptr);
}

http_reply api_client::stream(const std::string& path,
                              const std::map<std::string, std::string>& headers,
                              const std::function<bool(const std::string&)>& on_data) {
  return call("GET", path, nullptr, headers, &on_data);
}

std::string reply_error(const http_reply& r, const std::string& server) {
  if (r.status == 0)
    return "cannot reach the coordinator at " + server + ": " + r.error;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()
      && j["error"].contains("message"))
    return j["error"]["message"].get<std::string>() + " (HTTP " + std::to_string(r.status) + ")";
  return "HTTP " + std::to_string(r.status) + ": " + r.body;
}

bool sse_parser::feed(const std::string& chunk,
                      const std::function<bool(const event&)>& on_event) {
  buf_ += chunk;
  for (;;) {
    auto end = buf_.find("\n\n");
    if (end == std::string::npos)
      return true;
    auto block = buf_.substr(0, end);
    buf_.erase(0, end + 2);
    event ev;
    bool any = false;
    size_t pos = 0;
    while (pos <= block.size()) {
      auto nl = block.find('\n', pos);
      auto line = block.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      pos = nl == std::string::npos ? block.size() + 1 : nl + 1;
      if (line.empty() || line[0] == ':')
        continue;
      auto colon = line.find(':');
      auto field = line.substr(0, colon);
      auto value = colon == std::string::npos ? std::string{} : line.substr(colon + 1);
      if (!value.empty() && value[0] == ' ')
        value.erase(0, 1);
      if (field == "id")
        ev.id = value;
      else if (field == "event")
        ev.type = value;
      else if (field == "data")
        ev.data += (ev.data.empty() ? "" : "\n") + value;
      any = true;
    }
    if (any && !on_event(ev))
      return false;
  }
}

} // namespace troupe
