// troupe::gpu_client: a header-only client of a troupe node's GPU broker
// (GET/POST /gpu/* on a coordinator; docs/gpu.md), for services that embed
// troupe. Needs libcurl and nlohmann-json; nothing of troupe's build.
//
// It fails closed: no call blocks past its timeout (2 s by default), and a
// broker that is down, slow or refusing answers "no GPU" — the caller then
// runs on CPU. policy() is cached for 30 s.
//
//   troupe::gpu_client gpu{"http://127.0.0.1:8420", token};
//   auto lease = gpu.lease("my-service", /*gpus=*/0, /*memory=*/"8Gi", "10m");
//   if (lease.granted) setenv("CUDA_VISIBLE_DEVICES", lease.gpus_csv().c_str(), 1);
//   ...
//   gpu.release(lease.id);
#pragma once

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

class gpu_client {
public:
  struct info {
    bool available = false;
    std::string reason;   // why not, when not (the broker's, or the client's: down, timeout)
    nlohmann::json gpus = nlohmann::json::array();
    bool safe_mode = true;
  };
  struct lease_result {
    bool granted = false;
    bool queued = false;
    std::string id;
    std::vector<std::string> gpus;  // UUIDs
    std::string reason;             // when not granted
    std::string gpus_csv() const {
      std::string out;
      for (auto& g : gpus)
        out += (out.empty() ? "" : ",") + g;
      return out;
    }
  };

  explicit gpu_client(std::string base_url, std::string token = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(2))
    : base_(std::move(base_url)), token_(std::move(token)), timeout_(timeout) {
    while (!base_.empty() && base_.back() == '/')
      base_.pop_back();
  }

  /// The GPUs, or available: false with the reason (within the timeout).
  info gpu_info() {
    info out;
    auto r = call("GET", "/gpu/info", "");
    if (r.status != 200) {
      out.reason = r.failure();
      return out;
    }
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object()) {
      out.reason = "the broker's answer is not JSON";
      return out;
    }
    out.available = j.value("available", false);
    out.reason = j["reason"].is_string() ? j["reason"].get<std::string>() : "";
    out.gpus = j.value("gpus", nlohmann::json::array());
    out.safe_mode = j.value("safe_mode", true);
    return out;
  }

  /// The broker's policy, cached for 30 s; none when it cannot be read.
  std::optional<nlohmann::json> policy() {
    std::lock_guard<std::mutex> guard{mtx_};
    auto now = std::chrono::steady_clock::now();
    if (policy_ && now - policy_at_ < std::chrono::seconds(30))
      return policy_;
    auto r = call("GET", "/gpu/policy", "");
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (r.status != 200 || !j.is_object())
      return policy_;  // the last one known, if any
    policy_ = j;
    policy_at_ = now;
    return policy_;
  }

  /// Asks for `gpus` whole GPUs or `memory` ("8Gi") of one; `ttl` ("10m",
  /// "" for the policy's). Not granted (with the reason) when refused, down
  /// or slow.
  lease_result lease(const std::string& holder, int gpus, const std::string& memory = {},
                     const std::string& ttl = {}, bool wait = false) {
    nlohmann::json body{{"holder", holder}};
    if (gpus > 0)
      body["gpus"] = gpus;
    else
      body["memory"] = memory;
    if (!ttl.empty())
      body["ttl"] = ttl;
    if (wait)
      body["wait"] = true;
    lease_result out;
    auto r = call("POST", "/gpu/leases", body.dump());
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if ((r.status != 201 && r.status != 202) || !j.is_object()) {
      out.reason = r.failure();
      return out;
    }
    out.granted = r.status == 201;
    out.queued = r.status == 202;
    out.id = j.value("id", std::string{});
    for (auto& g : j.value("gpus", nlohmann::json::array()))
      out.gpus.push_back(g.get<std::string>());
    out.reason = j["reason"].is_string() ? j["reason"].get<std::string>() : "";
    return out;
  }

  bool renew(const std::string& id) {
    return call("POST", "/gpu/leases/" + id + "/renew", "").status == 200;
  }

  bool release(const std::string& id) {
    return call("DELETE", "/gpu/leases/" + id, "").status == 200;
  }

private:
  struct reply {
    long status = 0;
    std::string body;
    std::string error;
    std::string failure() const {
      if (status == 0)
        return "the GPU broker did not answer: " + error;
      auto j = nlohmann::json::parse(body, nullptr, false);
      if (j.is_object() && j.contains("error") && j["error"].is_object())
        return j["error"].value("message", std::string("HTTP ") + std::to_string(status));
      return "HTTP " + std::to_string(status);
    }
  };

  static size_t on_body(char* data, size_t size, size_t n, void* user) {
    static_cast<std::string*>(user)->append(data, size * n);
    return size * n;
  }

  reply call(const std::string& method, const std::string& path, const std::string& body) {
    static const bool ready = curl_global_init(CURL_GLOBAL_DEFAULT) == 0;
    reply out;
    CURL* curl = ready ? curl_easy_init() : nullptr;
    if (curl == nullptr) {
      out.error = "libcurl could not be initialised";
      return out;
    }
    curl_slist* headers = nullptr;
    if (!token_.empty())
      headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
    headers = curl_slist_append(headers, "Content-Type: application/json");
    auto url = base_ + path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
    if (method == "POST") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    char err[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
    auto rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
    else
      out.error = err[0] != '\0' ? err : curl_easy_strerror(rc);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return out;
  }

  std::string base_;
  std::string token_;
  std::chrono::milliseconds timeout_;
  std::mutex mtx_;
  std::optional<nlohmann::json> policy_;
  std::chrono::steady_clock::time_point policy_at_;
};

} // namespace troupe
