#include "tests/support/hostile_crowd.hpp"

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace troupe::load {

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// A socket bound to 127.a.b.c (so that every crowd member is its own client
// address, as a crowd of machines would be) and connecting to the port.
int open_socket(int port, uint32_t source, bool blocking) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0);
  if (fd < 0)
    return -1;
  if (source != 0) {
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(source);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
      ::close(fd);
      return -1;
    }
  }
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
  if (rc != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    auto n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// The crowd: idle, slowloris and follower sockets on one epoll thread.
class crowd {
public:
  enum class kind { idle, slowloris, follower };

  explicit crowd(int port) : port_(port), ep_(::epoll_create1(EPOLL_CLOEXEC)) {
  }
  ~crowd() {
    stop();
    for (auto& [fd, c] : conns_)
      ::close(fd);
    ::close(ep_);
  }
  // Opens `n` sockets of `k` (followers: on `targets`, round robin).
  void open(kind k, int n, const std::vector<std::string>& targets = {}) {
    std::lock_guard<std::mutex> guard{mtx_};
    for (int i = 0; i < n; ++i)
      add(k, targets.empty() ? std::string{} : targets[static_cast<size_t>(i) % targets.size()]);
  }
  void start() {
    thread_ = std::thread([this] { loop(); });
  }
  void stop() {
    stopping_ = true;
    if (thread_.joinable())
      thread_.join();
  }
  int open_now() {
    std::lock_guard<std::mutex> guard{mtx_};
    return static_cast<int>(conns_.size());
  }
  int followers_open() {
    std::lock_guard<std::mutex> guard{mtx_};
    int n = 0;
    for (auto& [fd, c] : conns_)
      n += c.k == kind::follower ? 1 : 0;
    return n;
  }
  std::atomic<int> reconnects{0};
  std::atomic<int> followers_ended{0};
  std::atomic<int> streams_with_end{0};

private:
  struct conn {
    kind k;
    std::string target;
    std::string tail;  // the last bytes a follower read (to find `event: end`)
    bool saw_end = false;
    size_t sent = 0;   // slowloris: bytes of its endless header sent
  };

  void add(kind k, const std::string& target) {
    // 127.1.0.1 upwards: one address per socket.
    uint32_t n = next_source_++;
    uint32_t source = (127u << 24) | (1u << 16) | ((n / 250) << 8) | (n % 250 + 1);
    int fd = open_socket(port_, source, false);
    if (fd < 0)
      return;
    conn c{k, target, {}, false, 0};
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (k == kind::follower ? EPOLLOUT : 0u);
    ev.data.fd = fd;
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    conns_.emplace(fd, std::move(c));
  }

  void closed(int fd) {
    auto it = conns_.find(fd);
    if (it == conns_.end())
      return;
    auto c = std::move(it->second);
    conns_.erase(it);
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    if (c.k == kind::follower) {
      if (c.saw_end)
        ++followers_ended;
      return;
    }
    if (!stopping_) {
      ++reconnects;
      add(c.k, c.target);  // a hostile crowd comes back
    }
  }

  void loop() {
    epoll_event events[256];
    auto last_drip = clock_type::now();
    while (!stopping_) {
      int n = ::epoll_wait(ep_, events, 256, 100);
      std::lock_guard<std::mutex> guard{mtx_};
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        auto it = conns_.find(fd);
        if (it == conns_.end())
          continue;
        auto& c = it->second;
        if ((events[i].events & EPOLLOUT) && c.k == kind::follower && c.sent == 0) {
          c.sent = 1;
          send_all(fd, "GET " + c.target + " HTTP/1.1\r\nHost: crowd\r\nAccept: text/event-stream\r\n\r\n");
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLRDHUP;
          ev.data.fd = fd;
          ::epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev);
        }
        if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          char buf[16384];
          bool gone = false;
          for (;;) {
            auto got = ::recv(fd, buf, sizeof buf, 0);
            if (got > 0) {
              if (c.k == kind::follower && !c.saw_end) {
                c.tail.append(buf, static_cast<size_t>(got));
                if (c.tail.find("event: end") != std::string::npos) {
                  c.saw_end = true;
                  ++streams_with_end;
                }
                if (c.tail.size() > 64)
                  c.tail.erase(0, c.tail.size() - 64);
              }
              continue;
            }
            gone = got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
            break;
          }
          if (gone)
            closed(fd);
        }
      }
      // Slowloris: one more byte of a header that never ends, each second.
      if (ms_since(last_drip) >= 1000) {
        last_drip = clock_type::now();
        static const std::string endless = "GET /health HTTP/1.1\r\nX-Slow: ";
        std::vector<int> dead;
        for (auto& [fd, c] : conns_) {
          if (c.k != kind::slowloris)
            continue;
          char byte = c.sent < endless.size() ? endless[c.sent] : 'a';
          ++c.sent;
          if (::send(fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN
              && errno != ENOTCONN)
            dead.push_back(fd);
        }
        for (int fd : dead)
          closed(fd);
      }
    }
  }

  int port_;
  int ep_;
  std::mutex mtx_;
  std::map<int, conn> conns_;
  uint32_t next_source_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

} // namespace

http_answer raw_call(int port, const std::string& request, int timeout_ms, uint32_t source) {
  http_answer out;
  auto t0 = clock_type::now();
  int fd = open_socket(port, source, true);
  if (fd < 0)
    return out;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string got;
  if (send_all(fd, request)) {
    char buf[16384];
    for (;;) {
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      got.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  out.ms = ms_since(t0);
  if (got.rfind("HTTP/1.1 ", 0) != 0 || got.size() < 12)
    return out;
  out.status = std::atoi(got.c_str() + 9);
  auto split = got.find("\r\n\r\n");
  out.body = split == std::string::npos ? std::string{} : got.substr(split + 4);
  return out;
}

http_answer http_call(int port, const std::string& method, const std::string& target,
                      const std::string& body, int timeout_ms, const std::string& token,
                      uint32_t source) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!token.empty())
    req += "Authorization: Bearer " + token + "\r\n";
  if (!body.empty() || method == "POST")
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size())
           + "\r\n";
  return raw_call(port, req + "\r\n" + body, timeout_ms, source);
}

int idle_socket(int port, uint32_t source) {
  return open_socket(port, source, true);
}

proc_status read_proc_status(pid_t pid) {
  proc_status s;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0)
      s.threads = std::atoi(line.c_str() + 8);
    else if (line.rfind("VmRSS:", 0) == 0)
      s.rss_kb = std::atoll(line.c_str() + 6);
  }
  return s;
}

uint64_t raise_open_files() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return 0;
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
  ::getrlimit(RLIMIT_NOFILE, &lim);
  return lim.rlim_cur;
}

double quantile(std::vector<double>& v, double q) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto at = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) ;
  return v[std::min(v.size() - 1, at == 0 ? 0 : at - 1)];
}

namespace {

std::string launch(int port, const std::string& pipeline) {
  auto r = http_call(port, "POST", "/api/runs", R"({"pipeline": ")" + pipeline + "\"}");
  if (r.status != 201)
    return {};
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("id") ? j["id"].get<std::string>() : std::string{};
}

std::string status_of(int port, const std::string& id) {
  auto r = http_call(port, "GET", "/api/runs/" + id);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return r.status == 200 && j.is_object() ? j.value("status", "") : "";
}

bool ended(const std::string& st) {
  return st == "succeeded" || st == "failed" || st == "cancelled" || st == "timed_out";
}

} // namespace

scenario_result run_scenario(const scenario_plan& plan) {
  scenario_result res;
  raise_open_files();
  res.before = read_proc_status(plan.pid);
  crowd people(plan.port);
  people.start();
  // The idle ones alone first: what an idle connection costs.
  people.open(crowd::kind::idle, plan.idle);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  res.with_idle = read_proc_status(plan.pid);
  // The followed runs, then their followers and the slowloris.
  std::vector<std::string> streams;
  for (int i = 0; i < plan.followed_runs; ++i) {
    auto id = launch(plan.port, plan.followed);
    if (id.empty()) {
      res.problem = "could not launch '" + plan.followed + "'";
      return res;
    }
    streams.push_back("/api/runs/" + id + "/events/stream");
  }
  people.open(crowd::kind::follower, plan.followers, streams);
  people.open(crowd::kind::slowloris, plan.slowloris);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // Probes and launches, spread over `seconds`.
  std::vector<std::string> launched;
  auto t0 = clock_type::now();
  auto total_ms = plan.seconds * 1000.0;
  bool health_turn = true;
  while (ms_since(t0) < total_ms) {
    auto due = static_cast<int>(ms_since(t0) / total_ms * plan.launches) + 1;
    while (static_cast<int>(launched.size()) < std::min(due, plan.launches)) {
      auto id = launch(plan.port, plan.quick);
      launched.push_back(id);
      res.launched += id.empty() ? 0 : 1;
    }
    auto r = health_turn ? http_call(plan.port, "GET", "/health", "", 5000)
                         : http_call(plan.port, "GET", "/api/runs?limit=20", "", 5000);
    if (r.status == 200)
      (health_turn ? res.health_ms : res.runs_ms).push_back(r.ms);
    else
      ++res.missed;
    health_turn = !health_turn;
    auto st = read_proc_status(plan.pid);
    res.max_threads = std::max(res.max_threads, st.threads);
    res.max_rss_kb = std::max(res.max_rss_kb, st.rss_kb);
    res.crowd_open = std::max(res.crowd_open, people.open_now());
    std::this_thread::sleep_for(std::chrono::milliseconds(plan.probe_gap_ms));
  }
  while (static_cast<int>(launched.size()) < plan.launches) {
    auto id = launch(plan.port, plan.quick);
    launched.push_back(id);
    res.launched += id.empty() ? 0 : 1;
  }
  // Every launched run ends; the followers see their streams end.
  auto deadline = clock_type::now() + std::chrono::seconds(60);
  for (auto& id : launched) {
    if (id.empty())
      continue;
    std::string st;
    while (!ended(st = status_of(plan.port, id)) && clock_type::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    res.succeeded += st == "succeeded" ? 1 : 0;
  }
  while (people.followers_open() > 0 && clock_type::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  people.stop();
  res.followers_ended = people.followers_ended;
  res.streams_with_end = people.streams_with_end;
  res.reconnects = people.reconnects;
  return res;
}

} // namespace troupe::load
