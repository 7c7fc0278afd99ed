#include "adapters/http_client/http_client.hpp"
#include "adapters/threads/thread_name.hpp"

#include <curl/curl.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

namespace troupe {

namespace {

constexpr size_t head_limit = 64 * 1024;

struct transfer {
  http_call call;
  std::function<void(http_outcome)> done;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  int fd = -1;
  int write_errno = 0;
  http_outcome out;
  std::string retry_after;
  char errbuf[CURL_ERROR_SIZE] = {0};
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<transfer*>(user);
  size_t len = size * n;
  if (t->out.head.size() < head_limit)
    t->out.head.append(data, std::min(len, head_limit - t->out.head.size()));
  size_t off = 0;
  while (off < len) {
    auto w = ::write(t->fd, data + off, len - off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      t->write_errno = errno;
      return 0;  // aborts the transfer
    }
    off += static_cast<size_t>(w);
  }
  t->out.stats.content_length += static_cast<int64_t>(len);
  return len;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<transfer*>(user);
  std::string line(data, size * n);
  // Each response of a redirect chain sends its headers: keep the last one's.
  if (line.rfind("HTTP/", 0) == 0)
    t->retry_after.clear();
  static const std::regex ra(R"(^retry-after:\s*(.*?)\s*$)", std::regex::icase);
  std::smatch m;
  if (std::regex_match(line, m, ra))
    t->retry_after = m[1].str();
  return size * n;
}

failure_code classify_curl(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return failure_code::timeout;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_WEIRD_SERVER_REPLY:
      return failure_code::network;
    default:
      return failure_code::unknown;
  }
}

double ms_since_start(CURL* e, CURLINFO what) {
  curl_off_t us = -1;
  if (curl_easy_getinfo(e, what, &us) != CURLE_OK || us <= 0)
    return -1;
  return static_cast<double>(us) / 1000.0;
}

} // namespace

caf::timespan parse_retry_after(const std::string& value, caf::timestamp now) {
  static const std::regex secs(R"(^\s*([0-9]{1,9})\s*$)");
  std::smatch m;
  if (std::regex_match(value, m, secs))
    return std::chrono::seconds(std::stol(m[1].str()));
  std::tm tm{};
  if (strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr)
    return caf::timespan{0};
  auto when = caf::timestamp{std::chrono::seconds(timegm(&tm))};
  return when > now ? caf::timespan{when - now} : caf::timespan{0};
}

struct http_client::impl {
  CURLM* multi = nullptr;
  std::mutex mx;
  std::deque<std::unique_ptr<transfer>> incoming;
  std::deque<std::function<void()>> work;
  std::map<CURL*, std::unique_ptr<transfer>> active;
  bool stop = false;
  std::thread thread;

  impl() {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    multi = curl_multi_init();
    thread = std::thread([this] {
      name_this_thread("http-client");
      loop();
    });
  }

  ~impl() {
    {
      std::lock_guard<std::mutex> g(mx);
      stop = true;
    }
    curl_multi_wakeup(multi);
    thread.join();
    for (auto& [e, t] : active)
      finish_cleanup(*t);
    curl_multi_cleanup(multi);
  }

  void finish_cleanup(transfer& t) {
    curl_multi_remove_handle(multi, t.easy);
    curl_easy_cleanup(t.easy);
    curl_slist_free_all(t.headers);
    if (t.fd >= 0)
      ::close(t.fd);
    t.fd = -1;
  }

  void start(std::unique_ptr<transfer> t) {
    auto& c = t->call;
    t->fd = ::open(c.body_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (t->fd < 0) {
      t->out.failure = failure_code::unknown;
      t->out.error = "cannot open " + c.body_path + ": " + std::strerror(errno);
      t->done(std::move(t->out));
      return;
    }
    CURL* e = curl_easy_init();
    t->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, c.request.url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "troupe/0.1");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    if (c.timeout.count() > 0)
      curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                       static_cast<long>(
                         std::chrono::duration_cast<std::chrono::milliseconds>(c.timeout).count()));
    const auto& m = c.request.method;
    if (m == "HEAD")
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (m != "GET")
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m.c_str());
    if (!c.request.body.empty() || m == "POST" || m == "PUT" || m == "PATCH") {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(c.request.body.size()));
      curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, c.request.body.c_str());
      if (m != "POST")
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m.c_str());
    }
    for (auto& [k, v] : c.request.headers)
      t->headers = curl_slist_append(t->headers, (k + ": " + v).c_str());
    if (t->headers != nullptr)
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_multi_add_handle(multi, e);
    active.emplace(e, std::move(t));
  }

  void complete(CURL* e, CURLcode rc) {
    auto it = active.find(e);
    if (it == active.end())
      return;
    auto t = std::move(it->second);
    active.erase(it);
    auto& s = t->out.stats;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    char* ct = nullptr;
    if (curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != nullptr)
      s.content_type = ct;
    char* url = nullptr;
    if (curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url != nullptr)
      s.final_url = url;
    long redirects = 0;
    curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &redirects);
    s.redirects = static_cast<int32_t>(redirects);
    s.dns_ms = ms_since_start(e, CURLINFO_NAMELOOKUP_TIME_T);
    s.connect_ms = ms_since_start(e, CURLINFO_CONNECT_TIME_T);
    s.tls_ms = ms_since_start(e, CURLINFO_APPCONNECT_TIME_T);
    s.first_byte_ms = ms_since_start(e, CURLINFO_STARTTRANSFER_TIME_T);
    s.total_ms = ms_since_start(e, CURLINFO_TOTAL_TIME_T);
    if (rc == CURLE_OK) {
      t->out.responded = true;
      s.status = static_cast<int32_t>(status);
      if (!t->retry_after.empty())
        t->out.retry_after = parse_retry_after(t->retry_after, caf::make_timestamp());
    } else {
      t->out.failure = t->write_errno != 0 ? failure_code::unknown : classify_curl(rc);
      t->out.error = t->write_errno != 0
                       ? std::string("writing the body: ") + std::strerror(t->write_errno)
                       : std::string(curl_easy_strerror(rc))
                           + (t->errbuf[0] != 0 ? std::string(": ") + t->errbuf : "");
    }
    if (t->fd >= 0 && ::fsync(t->fd) != 0 && t->out.error.empty())
      t->out.error = std::string("fsync of the body: ") + std::strerror(errno);
    finish_cleanup(*t);
    t->done(std::move(t->out));
  }

  void loop() {
    for (;;) {
      std::deque<std::unique_ptr<transfer>> fresh;
      std::deque<std::function<void()>> jobs;
      {
        std::lock_guard<std::mutex> g(mx);
        if (stop)
          return;
        fresh.swap(incoming);
        jobs.swap(work);
      }
      for (auto& t : fresh)
        start(std::move(t));
      for (auto& j : jobs)
        j();
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi, &left))
        if (msg->msg == CURLMSG_DONE)
          complete(msg->easy_handle, msg->data.result);
      curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
  }
};

http_client::http_client() : impl_(std::make_unique<impl>()) {
}

http_client::~http_client() = default;

void http_client::fetch(http_call call, std::function<void(http_outcome)> done) {
  auto t = std::make_unique<transfer>();
  t->call = std::move(call);
  t->done = std::move(done);
  {
    std::lock_guard<std::mutex> g(impl_->mx);
    impl_->incoming.push_back(std::move(t));
  }
  curl_multi_wakeup(impl_->multi);
}

void http_client::post(std::function<void()> work) {
  {
    std::lock_guard<std::mutex> g(impl_->mx);
    impl_->work.push_back(std::move(work));
  }
  curl_multi_wakeup(impl_->multi);
}

} // namespace troupe
