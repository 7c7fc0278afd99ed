#include "adapters/browser/cdp_browser.hpp"

#include "messages/errors.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <set>
#include <thread>

namespace troupe {

namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

double ms_between(double from, double to) {
  return from >= 0 && to >= from ? to - from : -1;
}

// One DevTools connection over the two FIFOs.
class connection {
public:
  connection(int in, int out, clock_type::time_point deadline, const browser_session& owner)
    : in_(in), out_(out), deadline_(deadline), owner_(owner) {
  }

  int send(const std::string& method, json params = json::object(),
           const std::string& session = {}) {
    json msg{{"id", next_id_}, {"method", method}, {"params", std::move(params)}};
    if (!session.empty())
      msg["sessionId"] = session;
    auto text = msg.dump();
    text.push_back('\0');
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
      auto n = ::write(in_, p, left);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      p += n;
      left -= static_cast<size_t>(n);
    }
    return next_id_++;
  }

  // The next message; nothing (and `why`) at EOF, the deadline or an abort.
  // `until` bounds this wait only (for short waits within the deadline).
  std::optional<json> next(std::string& why, failure_code& code,
                           clock_type::time_point until = clock_type::time_point::max()) {
    for (;;) {
      auto nul = buf_.find('\0');
      if (nul != std::string::npos) {
        auto text = buf_.substr(0, nul);
        buf_.erase(0, nul + 1);
        auto j = json::parse(text, nullptr, false);
        if (j.is_discarded())
          continue;
        return j;
      }
      auto now = clock_type::now();
      if (owner_.aborted()) {
        why = "the browser ended before the page was captured";
        code = failure_code::browser_unavailable;
        return std::nullopt;
      }
      if (now >= deadline_) {
        why = "the page was not captured in time";
        code = failure_code::timeout;
        return std::nullopt;
      }
      if (now >= until)
        return std::nullopt;  // a short wait ran out; `why` stays empty
      pollfd pfd{out_, POLLIN, 0};
      ::poll(&pfd, 1, 50);
      if (pfd.revents & (POLLIN | POLLHUP)) {
        char chunk[65536];
        auto n = ::read(out_, chunk, sizeof chunk);
        if (n > 0) {
          buf_.append(chunk, static_cast<size_t>(n));
        } else if (n == 0) {
          why = "the browser closed its DevTools pipe (it exited or crashed)";
          code = failure_code::browser_unavailable;
          return std::nullopt;
        }
      }
    }
  }

private:
  int in_;
  int out_;
  clock_type::time_point deadline_;
  const browser_session& owner_;
  std::string buf_;
  int next_id_ = 1;
};

// What the page's events told us.
struct page_state {
  std::string frame;  // the main frame (the target's id)
  bool have_document = false;
  json document;       // Network.Response of the main document
  int32_t redirects = 0;
  std::string failed;  // loadingFailed errorText of the main document
  bool loaded = false;
  std::set<std::string> in_flight;
  clock_type::time_point last_activity = clock_type::now();

  void on_event(const json& ev) {
    auto method = ev.value("method", "");
    const auto& p = ev.contains("params") ? ev["params"] : json::object();
    if (method == "Network.requestWillBeSent") {
      in_flight.insert(p.value("requestId", ""));
      last_activity = clock_type::now();
      if (p.value("type", "") == "Document" && p.value("frameId", "") == frame
          && p.contains("redirectResponse"))
        ++redirects;
    } else if (method == "Network.responseReceived") {
      last_activity = clock_type::now();
      if (p.value("type", "") == "Document" && p.value("frameId", "") == frame
          && p.contains("response")) {
        have_document = true;
        document = p["response"];
      }
    } else if (method == "Network.loadingFinished" || method == "Network.loadingFailed") {
      in_flight.erase(p.value("requestId", ""));
      last_activity = clock_type::now();
      if (method == "Network.loadingFailed" && p.value("type", "") == "Document" && !have_document)
        failed = p.value("errorText", "");
    } else if (method == "Page.loadEventFired") {
      loaded = true;
    }
  }
};

class session_run {
public:
  session_run(browser_call call, const browser_session& owner)
    : call_(std::move(call)), owner_(owner) {
  }

  http_outcome operator()() {
    http_outcome out;
    auto t0 = clock_type::now();
    auto deadline = t0 + call_.timeout;
    int in = ::open(call_.fifo_in.c_str(), O_RDWR | O_CLOEXEC);
    int rd = ::open(call_.fifo_out.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (in < 0 || rd < 0) {
      out.failure = failure_code::unknown;
      out.error = "cannot open the DevTools FIFOs: " + std::string(std::strerror(errno));
    } else {
      connection conn{in, rd, deadline, owner_};
      drive(conn, out, t0);
    }
    if (in >= 0)
      ::close(in);
    if (rd >= 0)
      ::close(rd);
    ::unlink(call_.fifo_in.c_str());
    ::unlink(call_.fifo_out.c_str());
    return out;
  }

private:
  // Waits for the reply to `id`, feeding events to the page; the reply's
  // result, or nothing (with out.error set).
  std::optional<json> reply(connection& conn, int id, http_outcome& out) {
    for (;;) {
      std::string why;
      failure_code code = failure_code::none;
      auto msg = conn.next(why, code);
      if (!msg) {
        out.failure = code;
        out.error = why;
        return std::nullopt;
      }
      if (msg->contains("id") && (*msg)["id"] == id) {
        if (msg->contains("error")) {
          out.failure = failure_code::unknown;
          out.error = "DevTools error: " + (*msg)["error"].value("message", msg->dump());
          return std::nullopt;
        }
        return msg->value("result", json::object());
      }
      page_.on_event(*msg);
    }
  }

  void drive(connection& conn, http_outcome& out, clock_type::time_point t0) {
    auto target = reply(conn, conn.send("Target.createTarget", {{"url", "about:blank"}}), out);
    if (!target)
      return;
    page_.frame = target->value("targetId", "");
    auto attached = reply(conn,
                          conn.send("Target.attachToTarget",
                                    {{"targetId", page_.frame}, {"flatten", true}}),
                          out);
    if (!attached)
      return;
    auto session = attached->value("sessionId", "");
    if (!reply(conn, conn.send("Network.enable", json::object(), session), out)
        || !reply(conn, conn.send("Page.enable", json::object(), session), out))
      return;
    auto nav = reply(conn, conn.send("Page.navigate", {{"url", call_.url}}, session), out);
    if (!nav)
      return;
    auto nav_error = nav->value("errorText", "");
    // Load, then a quiet network for `settle` (scripts that fetch more).
    std::string why;
    failure_code code = failure_code::none;
    auto settle_cap = clock_type::now() + 20 * call_.settle;
    while (nav_error.empty() || page_.have_document) {
      auto now = clock_type::now();
      if (page_.loaded && page_.in_flight.empty() && now - page_.last_activity >= call_.settle)
        break;
      if (page_.loaded && now >= settle_cap)
        break;  // a page that never goes quiet (polling, streams): take it as it is
      auto msg = conn.next(why, code, now + std::chrono::milliseconds(100));
      if (msg) {
        page_.on_event(*msg);
      } else if (!why.empty()) {
        break;
      }
    }
    auto loaded_at = clock_type::now();
    record_document(out, t0, loaded_at);
    if (!out.responded) {
      out.failure = code != failure_code::none ? code : failure_code::network;
      auto reason = !nav_error.empty() ? nav_error : !page_.failed.empty() ? page_.failed : why;
      out.error = "Chromium could not load " + call_.url + ": "
                  + (reason.empty() ? std::string("no document") : reason);
      close_browser(conn);
      return;
    }
    if (!why.empty() && !page_.loaded) {
      // The document answered but the page never finished loading.
      out.responded = false;
      out.failure = code;
      out.error = "Chromium got HTTP " + std::to_string(out.stats.status) + " from "
                  + out.stats.final_url + " but " + why;
      return;
    }
    auto dom = reply(conn,
                     conn.send("Runtime.evaluate",
                               {{"expression", "document.documentElement ? "
                                               "document.documentElement.outerHTML : ''"},
                                {"returnByValue", true}},
                               session),
                     out);
    if (!dom) {
      out.responded = false;
      return;
    }
    std::string html;
    if (dom->contains("result") && (*dom)["result"].contains("value")
        && (*dom)["result"]["value"].is_string())
      html = (*dom)["result"]["value"].get<std::string>();
    if (auto err = write_body(html); !err.empty()) {
      out.responded = false;
      out.failure = failure_code::unknown;
      out.error = "cannot write " + call_.body_path + ": " + err;
    } else {
      out.stats.content_length = static_cast<int64_t>(html.size());
      out.head = html.substr(0, 64 * 1024);
    }
    close_browser(conn);
  }

  void record_document(http_outcome& out, clock_type::time_point t0,
                       clock_type::time_point loaded_at) {
    if (!page_.have_document)
      return;
    const auto& d = page_.document;
    out.responded = true;
    auto& s = out.stats;
    s.status = d.value("status", 0);
    s.final_url = d.value("url", call_.url);
    s.content_type = d.value("mimeType", "");
    s.redirects = page_.redirects;
    if (d.contains("timing") && d["timing"].is_object()) {
      const auto& t = d["timing"];
      auto at = [&](const char* k) { return t.value(k, -1.0); };
      s.dns_ms = ms_between(at("dnsStart"), at("dnsEnd"));
      s.connect_ms = ms_between(at("connectStart"), at("connectEnd"));
      s.tls_ms = ms_between(at("sslStart"), at("sslEnd"));
      s.first_byte_ms = at("receiveHeadersEnd");
    }
    s.total_ms = std::chrono::duration<double, std::milli>(loaded_at - t0).count();
    if (d.contains("headers") && d["headers"].is_object())
      for (auto& [k, v] : d["headers"].items())
        if (v.is_string() && (k == "Retry-After" || k == "retry-after"))
          out.retry_after = parse_retry_after(v.get<std::string>(), caf::make_timestamp());
  }

  // "" when written and fsynced.
  std::string write_body(const std::string& html) {
    int fd = ::open(call_.body_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      return std::strerror(errno);
    size_t done = 0;
    while (done < html.size()) {
      auto n = ::write(fd, html.data() + done, html.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        std::string err = std::strerror(errno);
        ::close(fd);
        return err;
      }
      done += static_cast<size_t>(n);
    }
    std::string err = ::fsync(fd) == 0 ? "" : std::strerror(errno);
    ::close(fd);
    return err;
  }

  // Browser.close; Chromium then exits and its job_worker reports it.
  void close_browser(connection& conn) {
    auto id = conn.send("Browser.close");
    std::string why;
    failure_code code = failure_code::none;
    auto until = clock_type::now() + std::chrono::seconds(2);
    while (auto msg = conn.next(why, code, until))
      if (msg->contains("id") && (*msg)["id"] == id)
        break;
  }

  browser_call call_;
  const browser_session& owner_;
  page_state page_;
};

} // namespace

caf::expected<std::shared_ptr<browser_session>>
browser_session::start(browser_call call, std::function<void(http_outcome)> done) {
  for (auto* path : {&call.fifo_in, &call.fifo_out}) {
    ::unlink(path->c_str());
    if (::mkfifo(path->c_str(), 0600) != 0)
      return caf::make_error(errc::os_error, "cannot create FIFO " + *path + ": "
                                               + std::strerror(errno));
  }
  auto self = std::make_shared<browser_session>();
  std::thread([self, call = std::move(call), done = std::move(done)]() mutable {
    session_run run{std::move(call), *self};
    done(run());
  }).detach();
  return self;
}

std::vector<std::string> chromium_pipe_argv(const std::string& chromium,
                                            const std::string& profile_dir,
                                            const std::string& fifo_in,
                                            const std::string& fifo_out) {
  // sh opens the FIFOs as fds 3 and 4 (troupe's ends are already open, so
  // neither open waits), then becomes Chromium.
  return {"/bin/sh",
          "-c",
          "exec 3<\"$1\" 4>\"$2\" && shift 2 && exec \"$@\"",
          "troupe-chromium",
          fifo_in,
          fifo_out,
          chromium,
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-dev-shm-usage",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--disable-extensions",
          "--remote-debugging-pipe",
          "--user-data-dir=" + profile_dir};
}

} // namespace troupe
