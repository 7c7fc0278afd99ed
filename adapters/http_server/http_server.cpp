// The event-driven HTTP/1.1 server: see http_server.hpp for the picture.
// Everything that touches a socket runs on the I/O thread (ioc_.run());
// handler threads and the stream thread reach a connection only by posting
// to it.
#include "adapters/http_server/http_server.hpp"
#include "adapters/threads/thread_name.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include <sys/resource.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace troupe {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

std::string server_request::get_param_value(const std::string& key) const {
  auto it = query.find(key);
  return it == query.end() ? std::string{} : it->second;
}

std::string server_request::get_header_value(const std::string& name) const {
  std::string lower;
  for (char ch : name)
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto it = headers.find(lower);
  return it == headers.end() ? std::string{} : it->second;
}

uint64_t raise_open_files_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return 0;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0)
      return raised.rlim_cur;
  }
  return lim.rlim_cur;
}

namespace {

// %XX and (in queries) '+' decoded; a malformed escape stays as it is.
std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string status_line(int status) {
  auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  return "HTTP/1.1 " + std::to_string(status) + " "
         + (reason.empty() ? std::string("Unknown") : std::string(reason)) + "\r\n";
}

std::string error_body(const std::string& code, const std::string& message) {
  // The same shape as the API's errors: {"error": {"code", "message"}}.
  std::string escaped;
  for (char ch : message) {
    if (ch == '"' || ch == '\\')
      escaped += '\\';
    escaped += ch;
  }
  return "{\"error\": {\"code\": \"" + code + "\", \"message\": \"" + escaped + "\"}}\n";
}

std::string serialize(const server_response& res, bool keep_alive) {
  std::string out = status_line(res.status);
  bool no_body = res.status == 204 || res.status == 304;
  if (!no_body) {
    out += "Content-Type: " + res.content_type + "\r\n";
    out += "Content-Length: " + std::to_string(res.body.size()) + "\r\n";
  }
  for (auto& [k, v] : res.headers)
    out += k + ": " + v + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  if (!no_body)
    out += res.body;
  return out;
}

std::string chunk(const std::string& data) {
  char size[24];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + data + "\r\n";
}

} // namespace

struct route {
  std::string method;
  std::regex pattern;
  http_server::handler h;
  bool inline_ = false;
};

struct session;

// What the stream thread knows of one streaming connection.
struct stream_state {
  std::shared_ptr<stream_source> source;
  std::weak_ptr<session> conn;
  std::atomic<size_t> unsent{0};
  std::atomic<bool> closed{false};
};

struct http_server::impl {
  explicit impl(http_server_config c) : cfg(std::move(c)) {
  }

  http_server_config cfg;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::vector<route> routes;
  std::function<bool(const server_request&, server_response&)> pre_routing;
  handler not_found;

  // I/O thread only.
  std::unordered_map<std::string, size_t> per_client;
  std::unordered_map<session*, std::weak_ptr<session>> sessions;
  bool stopping_io = false;
  std::atomic<bool> serving{false};

  // Counters, read from any thread.
  std::atomic<int64_t> n_open{0}, n_streams{0}, n_accepted{0}, n_refused{0}, n_timed_out{0},
    n_requests{0}, n_busy{0}, n_too_large{0};

  // Handler threads.
  std::mutex jobs_mtx;
  std::condition_variable jobs_cv;
  std::deque<std::function<void()>> jobs;
  std::vector<std::thread> workers;
  bool stopping = false;

  // The stream thread.
  std::mutex streams_mtx;
  std::condition_variable streams_cv;
  std::vector<std::shared_ptr<stream_state>> streams;
  bool poked = false;
  std::thread pump;

  void accept();
  void refuse(tcp::socket sock, const std::string& why);
  bool enqueue(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> guard{jobs_mtx};
      if (jobs.size() >= cfg.max_queued)
        return false;
      jobs.push_back(std::move(job));
    }
    jobs_cv.notify_one();
    return true;
  }
  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> guard{jobs_mtx};
        jobs_cv.wait(guard, [&] { return stopping || !jobs.empty(); });
        if (stopping)
          return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      job();
    }
  }
  void add_stream(std::shared_ptr<stream_state> st) {
    {
      std::lock_guard<std::mutex> guard{streams_mtx};
      streams.push_back(std::move(st));
      poked = true;
    }
    streams_cv.notify_one();
  }
  void pump_loop();
};

// One connection. Lives as long as an operation or a handler holds it.
struct session : std::enable_shared_from_this<session> {
  session(http_server::impl& s, tcp::socket sock, std::string client)
    : srv(s), socket(std::move(sock)), deadline(s.ioc), client(std::move(client)) {
  }

  http_server::impl& srv;
  tcp::socket socket;
  asio::steady_timer deadline;
  boost::beast::flat_buffer buffer;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser;
  std::string client;
  bool closed = false;
  bool keep_alive = true;
  // Output: one write at a time, the rest queued.
  std::deque<std::string> out;
  bool writing = false;
  bool close_after_write = false;
  std::shared_ptr<stream_state> stream;
  std::array<char, 512> scratch{};

  void start() {
    read_header();
  }

  void arm(std::chrono::milliseconds after) {
    deadline.expires_after(after);
    deadline.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec && !self->closed) {
        ++self->srv.n_timed_out;
        self->close();
      }
    });
  }

  void read_header() {
    parser.emplace();
    parser->header_limit(static_cast<std::uint32_t>(srv.cfg.max_header));
    parser->body_limit(srv.cfg.max_body);
    arm(srv.cfg.header_timeout);
    bhttp::async_read_header(socket, buffer, *parser,
                             [self = shared_from_this()](const error_code& ec, size_t) {
                               self->on_header(ec);
                             });
  }

  void on_header(const error_code& ec) {
    if (closed)
      return;
    if (ec == bhttp::error::body_limit)
      return too_large();
    if (ec == bhttp::error::header_limit) {
      ++srv.n_too_large;
      return fail(431, "header_too_large",
                  "the request line and headers are over "
                    + std::to_string(srv.cfg.max_header) + " bytes");
    }
    if (ec) {
      if (ec != bhttp::error::end_of_stream && ec != asio::error::eof
          && ec != asio::error::operation_aborted && ec != asio::error::connection_reset
          && ec != asio::error::bad_descriptor)
        return fail(400, "bad_request", "not an HTTP/1.1 request: " + ec.message());
      return close();
    }
    auto& req = parser->get();
    if (parser->content_length() && *parser->content_length() > srv.cfg.max_body)
      return too_large();
    if (parser->is_done())
      return on_body({});
    arm(srv.cfg.body_timeout);
    auto expect = req[bhttp::field::expect];
    if (expect.size() == 12 && boost::beast::iequals(expect, "100-continue")) {
      auto self = shared_from_this();
      auto line = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(socket, asio::buffer(*line),
                        [self, line](const error_code& wec, size_t) {
                          if (wec)
                            return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(socket, buffer, *parser,
                      [self = shared_from_this()](const error_code& ec, size_t) {
                        self->on_body(ec);
                      });
  }

  void too_large() {
    ++srv.n_too_large;
    fail(413, "payload_too_large",
         "the body is over the limit of " + std::to_string(srv.cfg.max_body) + " bytes");
  }

  // An answer after which the connection closes (what follows may be unread).
  void fail(int status, const std::string& code, const std::string& message) {
    server_response res;
    res.status = status;
    res.body = error_body(code, message);
    keep_alive = false;
    send(std::move(res));
  }

  void on_body(const error_code& ec) {
    if (closed)
      return;
    if (ec == bhttp::error::body_limit)
      return too_large();
    if (ec)
      return close();
    deadline.cancel();
    ++srv.n_requests;
    auto& msg = parser->get();
    keep_alive = msg.keep_alive();
    auto req = std::make_shared<server_request>();
    req->method = std::string(msg.method_string());
    req->target = std::string(msg.target());
    auto q = req->target.find('?');
    req->path = percent_decode(std::string_view(req->target).substr(0, q), false);
    if (q != std::string::npos) {
      std::string_view rest = std::string_view(req->target).substr(q + 1);
      while (!rest.empty()) {
        auto amp = rest.find('&');
        auto pair = rest.substr(0, amp);
        auto eq = pair.find('=');
        if (!pair.empty())
          req->query.emplace(percent_decode(pair.substr(0, eq), true),
                             eq == std::string_view::npos
                               ? std::string{}
                               : percent_decode(pair.substr(eq + 1), true));
        if (amp == std::string_view::npos)
          break;
        rest = rest.substr(amp + 1);
      }
    }
    for (auto& f : msg) {
      std::string name(f.name_string());
      for (auto& ch : name)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      req->headers[name] = std::string(f.value());
    }
    req->body = std::move(msg.body());
    req->remote_addr = client;
    dispatch(std::move(req));
  }

  void dispatch(std::shared_ptr<server_request> req) {
    server_response res;
    if (srv.pre_routing && srv.pre_routing(*req, res))
      return send(std::move(res));
    const route* found = nullptr;
    bool other_method = false;
    std::smatch m;
    for (auto& r : srv.routes) {
      if (!std::regex_match(req->path, m, r.pattern))
        continue;
      if (r.method != req->method) {
        other_method = true;
        continue;
      }
      found = &r;
      break;
    }
    if (!found) {
      res.status = other_method ? 405 : 404;
      if (srv.not_found)
        srv.not_found(*req, res);
      return send(std::move(res));
    }
    for (auto& g : m)
      req->matches.push_back(g.str());
    if (found->inline_) {
      run(*found, *req, res);
      return send(std::move(res));
    }
    auto self = shared_from_this();
    auto h = found->h;
    bool queued = srv.enqueue([self, req, h] {
      server_response r;
      try {
        h(*req, r);
      } catch (const std::exception& e) {
        r = server_response{};
        r.status = 500;
        r.body = error_body("internal", e.what());
      }
      auto& io = self->srv.ioc;
      asio::post(io, [self, r = std::move(r)]() mutable { self->send(std::move(r)); });
    });
    if (!queued) {
      ++srv.n_busy;
      res.status = 503;
      res.set_header("Retry-After", "1");
      res.body = error_body("busy", "every handler is busy and " + std::to_string(srv.cfg.max_queued)
                                      + " requests wait; try again");
      send(std::move(res));
    }
  }

  static void run(const route& r, const server_request& req, server_response& res) {
    try {
      r.h(req, res);
    } catch (const std::exception& e) {
      res = server_response{};
      res.status = 500;
      res.body = error_body("internal", e.what());
    }
  }

  void send(server_response res) {
    if (closed)
      return;
    if (res.stream) {
      // A stream ends the connection when it ends: no reading of a next
      // request behind it.
      res.headers.emplace_back("Transfer-Encoding", "chunked");
      std::string head = status_line(res.status) + "Content-Type: " + res.content_type + "\r\n";
      for (auto& [k, v] : res.headers)
        head += k + ": " + v + "\r\n";
      head += "Connection: close\r\n\r\n";
      stream = std::make_shared<stream_state>();
      stream->source = res.stream;
      stream->conn = weak_from_this();
      ++srv.n_streams;
      stream->unsent += head.size();
      write(std::move(head));
      watch_for_close();
      srv.add_stream(stream);
      return;
    }
    write(serialize(res, keep_alive));
    if (!keep_alive)
      close_after_write = true;
  }

  // While streaming, a read that only notices the client going away.
  void watch_for_close() {
    socket.async_read_some(asio::buffer(scratch),
                           [self = shared_from_this()](const error_code& ec, size_t) {
                             if (ec)
                               return self->close();
                             self->watch_for_close();
                           });
  }

  void write(std::string bytes) {
    out.push_back(std::move(bytes));
    if (!writing)
      write_next();
  }

  void write_next() {
    if (closed)
      return;
    if (out.empty()) {
      writing = false;
      if (close_after_write)
        return stream ? close() : shutdown_and_close();
      if (stream)
        deadline.cancel();  // a quiet stream has no deadline; its pings find dead clients
      else
        read_header();
      return;
    }
    writing = true;
    arm(srv.cfg.write_timeout);
    auto self = shared_from_this();
    asio::async_write(socket, asio::buffer(out.front()),
                      [self](const error_code& ec, size_t n) {
                        if (ec)
                          return self->close();
                        if (self->stream)
                          self->stream->unsent -= n;
                        self->out.pop_front();
                        self->write_next();
                      });
  }

  // From the stream thread, through the I/O thread.
  void stream_bytes(std::string data, bool last) {
    if (closed)
      return;
    std::string frames = data.empty() ? std::string{} : chunk(data);
    if (last) {
      frames += "0\r\n\r\n";
      close_after_write = true;
    }
    // `unsent` counted the data; count the framing too, so it ends at 0.
    stream->unsent += frames.size() - data.size();
    write(std::move(frames));
  }

  void shutdown_and_close() {
    error_code ec;
    socket.shutdown(tcp::socket::shutdown_send, ec);
    // What the client may still send (an unread body) is drained briefly, so
    // that closing does not reset the connection before it read the answer.
    arm(std::chrono::milliseconds(1000));
    drain();
  }

  void drain() {
    socket.async_read_some(asio::buffer(scratch),
                           [self = shared_from_this()](const error_code& ec, size_t) {
                             if (ec)
                               return self->close();
                             self->drain();
                           });
  }

  void close() {
    if (closed)
      return;
    closed = true;
    error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
    deadline.cancel();
    if (stream) {
      stream->closed = true;
      --srv.n_streams;
    }
    --srv.n_open;
    auto it = srv.per_client.find(client);
    if (it != srv.per_client.end() && --it->second == 0)
      srv.per_client.erase(it);
    srv.sessions.erase(this);
  }
};

void http_server::impl::accept() {
  acceptor.async_accept([self = this](const error_code& ec, tcp::socket sock) {
    if (self->stopping_io)
      return;
    if (ec) {
      // EMFILE and the like: try again shortly rather than spin.
      auto t = std::make_shared<asio::steady_timer>(self->ioc, std::chrono::milliseconds(50));
      t->async_wait([self, t](const error_code&) { self->accept(); });
      return;
    }
    ++self->n_accepted;
    error_code aec;
    auto ep = sock.remote_endpoint(aec);
    std::string client = aec ? std::string("?") : ep.address().to_string();
    sock.set_option(tcp::no_delay(true), aec);
    auto& mine = self->per_client[client];
    if (static_cast<size_t>(self->n_open.load()) >= self->cfg.max_connections) {
      if (mine == 0)
        self->per_client.erase(client);
      self->refuse(std::move(sock), "the server holds " + std::to_string(self->cfg.max_connections)
                                      + " connections, its limit");
    } else if (mine >= self->cfg.max_connections_per_client) {
      self->refuse(std::move(sock), "client " + client + " holds "
                                      + std::to_string(self->cfg.max_connections_per_client)
                                      + " connections, the limit for one client");
    } else {
      ++mine;
      ++self->n_open;
      auto s = std::make_shared<session>(*self, std::move(sock), client);
      self->sessions.emplace(s.get(), s);
      s->start();
    }
    self->accept();
  });
}

void http_server::impl::refuse(tcp::socket sock, const std::string& why) {
  ++n_refused;
  auto body = error_body("too_many_connections", why + "; try again later");
  auto text = std::make_shared<std::string>(status_line(503) + "Content-Type: application/json\r\n"
                                            "Content-Length: " + std::to_string(body.size())
                                            + "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                                            + body);
  auto s = std::make_shared<tcp::socket>(std::move(sock));
  auto timer = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(1000));
  timer->async_wait([s](const error_code&) {
    error_code ec;
    s->close(ec);
  });
  asio::async_write(*s, asio::buffer(*text), [s, text, timer](const error_code& ec, size_t) {
    error_code ignored;
    if (ec) {
      timer->cancel();
      return;
    }
    s->shutdown(tcp::socket::shutdown_send, ignored);
    // The timer closes it: a second or less, whatever the client does.
  });
}

void http_server::impl::pump_loop() {
  std::vector<std::shared_ptr<stream_state>> mine;
  bool busy = false;  // a source gave bytes last pass: it may have more at once
  for (;;) {
    {
      std::unique_lock<std::mutex> guard{streams_mtx};
      streams_cv.wait_for(guard, busy ? std::chrono::milliseconds(1) : cfg.stream_tick,
                          [&] { return stopping || poked; });
      if (stopping)
        return;
      poked = false;
      for (auto& s : streams)
        mine.push_back(std::move(s));
      streams.clear();
    }
    std::vector<std::shared_ptr<stream_state>> keep;
    keep.reserve(mine.size());
    busy = false;
    for (auto& st : mine) {
      if (st->closed)
        continue;
      if (st->unsent.load() >= cfg.stream_buffer) {
        keep.push_back(st);  // the client reads slowly: nothing more until it catches up
        continue;
      }
      std::string data;
      bool more = true;
      try {
        more = st->source->pull(data);
      } catch (const std::exception&) {
        more = false;
      }
      if (!data.empty() || !more) {
        busy = busy || !data.empty();
        st->unsent += data.size();
        asio::post(ioc, [w = st->conn, data = std::move(data), more]() mutable {
          if (auto s = w.lock())
            s->stream_bytes(std::move(data), !more);
        });
      }
      if (more)
        keep.push_back(st);
    }
    mine.swap(keep);
  }
}

http_server::http_server(http_server_config cfg)
  : impl_(std::make_shared<impl>(std::move(cfg))) {
}

http_server::~http_server() {
  stop();
}

void http_server::add(const std::string& method, const std::string& pattern, handler h,
                      bool inline_) {
  impl_->routes.push_back(route{method, std::regex(pattern), std::move(h), inline_});
}

void http_server::set_pre_routing(std::function<bool(const server_request&, server_response&)> f) {
  impl_->pre_routing = std::move(f);
}

void http_server::set_not_found(handler h) {
  impl_->not_found = std::move(h);
}

int http_server::bind(const std::string& host, int port, std::string& error) {
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) {
    // A name: the first address it resolves to.
    tcp::resolver resolver{impl_->ioc};
    auto found = resolver.resolve(host, std::to_string(port), ec);
    if (ec || found.empty()) {
      error = "cannot resolve '" + host + "': " + ec.message();
      return -1;
    }
    addr = found.begin()->endpoint().address();
  }
  tcp::endpoint ep{addr, static_cast<unsigned short>(port)};
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec)
    a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec)
    a.bind(ep, ec);
  if (!ec)
    a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message();
    error_code ignored;
    a.close(ignored);
    return -1;
  }
  return a.local_endpoint().port();
}

void http_server::serve() {
  auto& s = *impl_;
  for (int i = 0; i < std::max(1, s.cfg.handler_threads); ++i)
    s.workers.emplace_back([&s] {
      name_this_thread("api-handler");
      s.work();
    });
  s.pump = std::thread([&s] {
    name_this_thread("api-stream");
    s.pump_loop();
  });
  s.serving = true;
  s.accept();
  s.ioc.run();
  {
    std::lock_guard<std::mutex> g1{s.jobs_mtx};
    std::lock_guard<std::mutex> g2{s.streams_mtx};
    s.stopping = true;
  }
  s.jobs_cv.notify_all();
  s.streams_cv.notify_all();
  for (auto& w : s.workers)
    w.join();
  s.workers.clear();
  if (s.pump.joinable())
    s.pump.join();
}

void http_server::stop() {
  auto* s = impl_.get();
  if (!s->serving.exchange(false)) {
    error_code ec;
    s->acceptor.close(ec);
    return;
  }
  asio::post(s->ioc, [s] {
    s->stopping_io = true;
    error_code ec;
    s->acceptor.close(ec);
    std::vector<std::shared_ptr<session>> all;
    for (auto& [p, w] : s->sessions)
      if (auto x = w.lock())
        all.push_back(x);
    for (auto& x : all)
      x->close();
    s->ioc.stop();
  });
}

void http_server::poke_streams() {
  {
    std::lock_guard<std::mutex> guard{impl_->streams_mtx};
    impl_->poked = true;
  }
  impl_->streams_cv.notify_one();
}

http_server_stats http_server::stats() const {
  auto& s = *impl_;
  http_server_stats st;
  st.open = s.n_open;
  st.streams = s.n_streams;
  st.accepted = s.n_accepted;
  st.refused = s.n_refused;
  st.timed_out = s.n_timed_out;
  st.requests = s.n_requests;
  st.busy = s.n_busy;
  st.too_large = s.n_too_large;
  return st;
}

} // namespace troupe
