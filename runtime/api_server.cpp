#include "runtime/api_server.hpp"

#include "adapters/artifacts/run_folder.hpp"
#include "adapters/http_server/http_server.hpp"

#include "actors/running_order.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"
#include "runtime/coordinator.hpp"
#include "runtime/gpu_api.hpp"
#include "runtime/http_api.hpp"
#include "runtime/coordinator/launch_check.hpp"
#include "runtime/host_env.hpp"
#include "runtime/run_ref.hpp"
#include "runtime/duration.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>

namespace troupe {

using json = nlohmann::ordered_json;

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Every byte of the longer is looked at, whatever the first difference.
  size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

namespace {

const std::set<std::string> schedule_keys{"pipeline", "kind",    "at",       "every",
                                          "cron",     "overlap", "catch_up", "enabled",
                                          "priority", "enable",  "env",      "params"};






api_error store_down(const caf::error& err) {
  return {503, "store_unavailable", describe(err)};
}












std::optional<api_error> get_options(const json& body, launch_request& out) {
  if (body.contains("enable")) {
    if (!body["enable"].is_array())
      return bad_request("enable", "must be a list of stage names");
    for (auto& e : body["enable"]) {
      if (!e.is_string())
        return bad_request("enable", "must be a list of stage names");
      out.enable.push_back(e.get<std::string>());
    }
  }
  if (body.contains("env")) {
    if (!body["env"].is_object())
      return bad_request("env", "must be an object of strings");
    for (auto& [k, v] : body["env"].items()) {
      if (!v.is_string())
        return bad_request("env." + k, "must be a string");
      out.env[k] = v.get<std::string>();
    }
  }
  if (body.contains("params")) {
    if (!body["params"].is_object())
      return bad_request("params", "must be an object of NAME: value");
    for (auto& [k, v] : body["params"].items()) {
      if (v.is_string())
        out.params[k] = v.get<std::string>();
      else if (v.is_number() || v.is_boolean())
        out.params[k] = v.dump();
      else
        return bad_request("params." + k, "must be a string, number or boolean");
    }
  }
  return std::nullopt;
}

// `text` (a query value or a header value, named `key`) as an integer in
// [lo, hi]: digits only, no sign, space or suffix, no overflow.
std::optional<api_error> parse_int(const std::string& key, const std::string& text, int64_t& out,
                                   int64_t lo, int64_t hi) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char ch) {
    return std::isdigit(static_cast<unsigned char>(ch)) || ch == '-';
  });
  if (!digits || *end != '\0' || errno != 0 || v < lo || v > hi)
    return bad_request(key, "'" + text + "' is not an integer between " + std::to_string(lo)
                              + " and " + std::to_string(hi));
  out = v;
  return std::nullopt;
}

// A query parameter as an integer in [lo, hi]; `out` unchanged when absent.
std::optional<api_error> query_int(const server_request& req, const char* key, int64_t& out,
                                   int64_t lo, int64_t hi) {
  if (!req.has_param(key))
    return std::nullopt;
  return parse_int(key, req.get_param_value(key), out, lo, hi);
}


using steady = std::chrono::steady_clock;

// When a stream looks again: at once after the bell rang for its run (or
// when it asked to), else once a second (runs of other coordinators, and
// rings it missed). A quiet stream costs no store read in between.
class look_gate {
public:
  look_gate(event_bell& bell, std::string run_id) : bell_(bell), run_id_(std::move(run_id)) {
  }
  bool due() {
    auto now = steady::now();
    auto gen = bell_.generation_of(run_id_);
    if (!again_ && gen == seen_ && now - last_ < std::chrono::seconds(1))
      return false;
    again_ = false;
    seen_ = gen;
    last_ = now;
    return true;
  }
  void again() {
    again_ = true;
  }

private:
  event_bell& bell_;
  std::string run_id_;
  uint64_t seen_ = 0;
  bool again_ = true;
  steady::time_point last_{};
};

// GET /api/runs/{id}/events/stream: the run's events as SSE frames, then an
// `end` frame once the run has ended and every event was sent.
class event_stream : public stream_source {
public:
  event_stream(coordinator& c, std::string run_id, int64_t after)
    : c_(c), run_id_(std::move(run_id)), cursor_(after), gate_(c.bell(), run_id_),
      quiet_since_(steady::now()) {
  }

  bool pull(std::string& out) override {
    if (!gate_.due())
      return keep_alive(out);
    auto db = c_.reader();
    if (!db)
      return false;
    // The status first: once it is terminal, every event of the run is
    // committed (the last ones are in the same transaction).
    auto run = troupe::find_run(**db, run_id_);
    if (!run)
      return false;
    bool ended = is_terminal(run->status);
    auto events = (*db)->events_after(run_id_, cursor_, batch);
    if (!events)
      return false;
    // One write for all the events of one look: a client sees the events
    // of one commit together.
    for (auto& e : *events) {
      json j = e;
      out += "id: " + std::to_string(e.id) + "\nevent: event\ndata: " + j.dump() + "\n\n";
    }
    if (!events->empty()) {
      cursor_ = events->back().id;
      c_.metrics().events_streamed += static_cast<int64_t>(events->size());
      quiet_since_ = steady::now();
      if (events->size() == static_cast<size_t>(batch) || ended)
        gate_.again();  // more may wait, or the end frame does
      return true;
    }
    if (ended) {
      json end = {{"run_id", run_id_}, {"status", to_string(run->status)}};
      out += "event: end\ndata: " + end.dump() + "\n\n";
      return false;
    }
    return keep_alive(out);
  }

private:
  // A comment now and then keeps proxies from closing a quiet stream and
  // finds a client that went away.
  bool keep_alive(std::string& out) {
    if (steady::now() - quiet_since_ > std::chrono::seconds(15)) {
      out += ": keep-alive\n\n";
      quiet_since_ = steady::now();
    }
    return true;
  }

  static constexpr int32_t batch = 500;
  coordinator& c_;
  std::string run_id_;
  int64_t cursor_;
  look_gate gate_;
  steady::time_point quiet_since_;
};

// Whether `attempt` of `stage` has ended (so its log is complete).
bool attempt_ended(coordinator& c, const std::string& run_id, const std::string& stage,
                   int32_t attempt) {
  auto db = c.reader();
  if (!db)
    return true;
  auto run = troupe::find_run(**db, run_id);
  if (!run || is_terminal(run->status))
    return true;
  auto jobs = (*db)->jobs(run_id);
  if (!jobs)
    return true;
  for (auto& j : *jobs) {
    if (j.job != stage)
      continue;
    if (j.attempts > attempt)
      return true;  // a later attempt runs
    return j.status != stage_status::pending && j.status != stage_status::running
           && j.attempts >= attempt;
  }
  return true;
}

// GET /api/runs/{id}/logs/{stage}?follow=1: the log's bytes from `offset`
// as they are written, until the attempt has ended and all was sent.
class log_follower : public stream_source {
public:
  log_follower(coordinator& c, std::string path, std::string run_id, std::string stage,
               int32_t attempt, int64_t offset)
    : c_(c), path_(std::move(path)), run_id_(std::move(run_id)), stage_(std::move(stage)),
      attempt_(attempt), at_(offset), gate_(c.bell(), run_id_) {
  }
  ~log_follower() override {
    if (fd_ >= 0)
      ::close(fd_);
  }

  bool pull(std::string& out) override {
    // Whether the attempt had ended is read before the file: bytes written
    // before the end are then all in the file.
    bool ended = gate_.due() && attempt_ended(c_, run_id_, stage_, attempt_);
    if (fd_ < 0)
      fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    if (fd_ >= 0) {
      char buf[65536];
      ssize_t n = 0;
      while (got < max_read
             && (n = ::pread(fd_, buf, sizeof buf, static_cast<off_t>(at_))) > 0) {
        out.append(buf, static_cast<size_t>(n));
        at_ += n;
        got += static_cast<size_t>(n);
      }
    }
    if (got == 0)
      return !ended;
    if (got < max_read)
      gate_.again();  // at the end of what is there: ask whether the attempt ended
    return true;
  }

private:
  coordinator& c_;
  std::string path_;
  std::string run_id_;
  std::string stage_;
  static constexpr size_t max_read = 256 << 10;  // a look's bytes at most
  int32_t attempt_;
  int64_t at_;
  look_gate gate_;
  int fd_ = -1;
};

} // namespace

struct api_server::impl {
  coordinator& c;
  http_server svr;

  impl(coordinator& co, const http_server_config& hc) : c(co), svr(hc) {
    svr.set_pre_routing([this](const server_request& req, server_response& res) {
      ++c.metrics().http_requests;
      if (c.config().token.empty()
          || (req.path.rfind("/api/", 0) != 0 && req.path.rfind("/gpu/", 0) != 0))
        return false;
      auto auth = req.get_header_value("Authorization");
      const std::string scheme = "Bearer ";
      bool ok = auth.rfind(scheme, 0) == 0
                && constant_time_equal(auth.substr(scheme.size()), c.config().token);
      if (ok)
        return false;
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, {401, "unauthorized",
                       auth.empty() ? "this coordinator needs 'Authorization: Bearer <token>'"
                                    : "the token is wrong"});
      return true;
    });
    svr.set_not_found([](const server_request& req, server_response& res) {
      if (res.status == 405)
        send_error(res, {405, "method_not_allowed",
                         req.method + " is not served at " + req.path});
      else
        send_error(res, {404, "not_found", "no such endpoint: " + req.method + " " + req.path});
    });
    // The stream thread wakes when a run reports, not only at its tick.
    c.bell().on_ring([this] { svr.poke_streams(); });
    routes();
    c.gpu().add_routes(svr);
  }

  // The schedule `id`, or an error.
  api_result<schedule_row> find_schedule(store& db, const std::string& id) {
    auto s = db.find_schedule(id);
    if (!s)
      return store_down(s.error());
    if (!*s)
      return api_error{404, "not_found", "no schedule " + id};
    return **s;
  }

  // 201 for a run just launched (POST /api/runs, a schedule's trigger).
  static void send_launched(server_response& res, const run_row& run) {
    res.set_header("Location", "/api/runs/" + run.run_id);
    send_json(res, 201, {{"id", run.run_id},
                         {"status", to_string(run.status)},
                         {"pipeline", run.pipeline},
                         {"created_at", iso8601(run.created_at)},
                         {"run", json(run)}});
  }

  api_result<run_row> find_run(store& db, const std::string& id) {
    return troupe::find_run(db, id);
  }

  void routes() {
    // On the I/O thread: it reads nothing that can block.
    svr.add(
      "GET", "/health",
      [this](const server_request&, server_response& res) {
        send_json(res, 200, {{"status", "ok"},
                             {"coordinator", c.id()},
                             {"max_running", c.config().max_running},
                             {"pipelines", c.config().pipelines}});
      },
      true);
    svr.add("GET", "/ready", [this](const server_request&, server_response& res) {
      bool ok = c.ready();
      send_json(res, ok ? 200 : 503,
                {{"status", ok ? "ready" : "not ready"}, {"coordinator", c.id()}});
    });
    svr.add("GET", "/metrics", [this](const server_request&, server_response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
    svr.add("GET", "/api/pipelines", [this](const server_request&, server_response& res) {
      // Each pipeline with what a client needs to launch it: its params
      // (required, default, description), stages, api_env and schedules.
      std::map<std::string, json> schedules;
      if (auto db = c.reader())
        if (auto all = (*db)->schedules())
          for (auto& sc : *all)
            schedules[sc.pipeline].push_back({{"id", sc.id},
                                              {"kind", sc.kind},
                                              {"spec", sc.spec},
                                              {"enabled", sc.enabled}});
      json list = json::array();
      for (auto& p : c.pipelines()) {
        json stages = json::array();
        for (auto& st : p.stages)
          stages.push_back({{"name", st.name},
                            {"optional", st.optional},
                            {"depends_on", st.depends_on}});
        json params = json::array();
        for (auto& d : p.params)
          params.push_back({{"name", d.name},
                            {"required", d.required},
                            {"default", d.default_value ? json(*d.default_value) : json(nullptr)},
                            {"description", d.description}});
        auto mine = schedules.find(p.name);
        list.push_back({{"name", p.name},
                        {"description", p.description},
                        {"file", p.file},
                        {"max_running", p.max_running},
                        {"resume", p.resume},
                        {"params", params},
                        {"api_env", p.api_env},
                        {"stages", stages},
                        {"schedules", mine == schedules.end() ? json::array() : mine->second}});
      }
      send_json(res, 200, {{"pipelines", list}});
    });
    svr.add("POST", "/api/runs", [this](const server_request& req, server_response& res) {
      json body;
      launch_request lr;
      std::optional<api_error> err = parse_body(req, {"pipeline", "priority", "enable", "env", "params"}, body);
      if (!err)
        err = get_string(body, "pipeline", lr.pipeline, true);
      if (!err)
        err = get_int(body, "priority", lr.priority, -1000, 1000);
      if (!err)
        err = get_options(body, lr);
      if (err)
        return send_error(res, *err);
      auto run = c.launch(lr);
      if (fail(res, run))
        return;
      send_launched(res, *run);
    });
    svr.add("GET", "/api/runs", [this](const server_request& req, server_response& res) {
      run_filter f;
      if (req.has_param("status")) {
        auto st = parse_run_status(req.get_param_value("status"));
        if (!st)
          return send_error(res, bad_request("status", "'" + req.get_param_value("status")
                                                         + "' is not one of queued, running, "
                                                           "succeeded, failed, timed_out, cancelled"));
        f.status = *st;
      }
      f.pipeline = req.get_param_value("pipeline");
      int64_t limit = 50;
      if (auto err = query_int(req, "limit", limit, 1, 1000))
        return send_error(res, *err);
      f.limit = static_cast<int32_t>(limit) + 1;  // one more: is there a next page?
      f.after = req.get_param_value("cursor");
      auto db = c.reader();
      if (!db)
        return send_error(res, store_down(db.error()));
      if (!f.after.empty()) {
        auto at = find_run(**db, f.after);
        if (!at)
          return send_error(res, bad_request("cursor", "'" + f.after + "' is not a run id"));
      }
      auto runs = (*db)->runs(f);
      if (!runs)
        return send_error(res, store_down(runs.error()));
      json next = nullptr;
      if (static_cast<int64_t>(runs->size()) > limit) {
        runs->resize(static_cast<size_t>(limit));
        next = runs->back().run_id;
      }
      // With ?short_ids=1, each with the shortest prefix that names it now
      // (what people type; a store lookup or a few per run, so on request).
      int64_t short_ids = 0;
      if (auto err = query_int(req, "short_ids", short_ids, 0, 1))
        return send_error(res, *err);
      json list = json::array();
      for (auto& r : *runs) {
        json one = r;
        if (short_ids == 1)
          one["short_id"] = shortest_unique(**db, r.run_id);
        list.push_back(std::move(one));
      }
      send_json(res, 200, {{"runs", list}, {"next_cursor", next}});
    });
    svr.add("GET", R"(/api/runs/([^/]+))", [this](const server_request& req, server_response& res) {
      auto db = c.reader();
      if (!db)
        return send_error(res, store_down(db.error()));
      auto run = find_run(**db, req.matches[1]);
      if (fail(res, run))
        return;
      auto jobs = (*db)->jobs(run->run_id);
      auto attempts = (*db)->attempts(run->run_id);
      if (!jobs || !attempts)
        return send_error(res, store_down(!jobs ? jobs.error() : attempts.error()));
      auto doc = json::parse(show_document(*run, *jobs, *attempts));
      // What the store does not keep, from the run's own metadata.json:
      // each stage's command and its retry budget.
      json meta;
      if (std::ifstream in{run->run_dir.empty() ? std::string{} : run->run_dir + "/metadata.json"})
        meta = json::parse(in, nullptr, false);
      std::map<std::string, json> stages;
      if (meta.is_object() && meta.contains("stages") && meta["stages"].is_array())
        for (auto& st : meta["stages"])
          if (st.is_object() && st.contains("name"))
            stages[st["name"].get<std::string>()] = st;
      for (auto& s : doc["stages"]) {
        s["node"] = c.id();  // the local node (the cluster names its workers here)
        auto it = stages.find(s["name"].get<std::string>());
        s["command"] = it != stages.end() ? it->second.value("command", "") : "";
        s["max_attempts"] = it != stages.end() ? it->second.value("max_attempts", 1) : 1;
      }
      doc["jobs"] = doc["stages"];  // the alias (docs/glossary.md)
      send_json(res, 200, doc);
    });
    svr.add("POST", R"(/api/runs/([^/]+)/cancel)",
             [this](const server_request& req, server_response& res) {
               auto run = c.cancel(req.matches[1], "cancelled through the API (from "
                                                      + req.remote_addr + ")");
               if (fail(res, run))
                 return;
               send_json(res, 202, {{"id", run->run_id},
                                    {"status", to_string(run->status)},
                                    {"cancel_requested", true}});
             });
    svr.add("POST", R"(/api/runs/([^/]+)/rerun)",
             [this](const server_request& req, server_response& res) {
               const std::string& text = req.body;
               json body = text.empty() ? json::object() : json::parse(text, nullptr, false);
               if (!body.is_object())
                 return send_error(res, bad_request("body", "must be a JSON object"));
               static const std::set<std::string> keys{"from", "allow_changed", "reason", "by"};
               for (auto& [k, v] : body.items())
                 if (keys.count(k) == 0)
                   return send_error(res, bad_request(k, "unknown field (fields: allow_changed, "
                                                         "by, from, reason)"));
               rerun_request rr;
               std::optional<api_error> err = get_string(body, "from", rr.from, false);
               if (!err)
                 err = get_string(body, "reason", rr.reason, false);
               if (!err)
                 err = get_string(body, "by", rr.by, false);
               if (!err && body.contains("allow_changed")) {
                 if (!body["allow_changed"].is_boolean())
                   err = bad_request("allow_changed", "must be true or false");
                 else
                   rr.allow_changed = body["allow_changed"].get<bool>();
               }
               if (err)
                 return send_error(res, *err);
               if (rr.by.empty())
                 rr.by = "api (" + req.remote_addr + ")";
               auto run = c.rerun(req.matches[1], rr);
               if (fail(res, run))
                 return;
               send_json(res, 202, {{"id", run->run_id}, {"status", to_string(run->status)},
                                    {"rerun", true}});
             });
    svr.add("GET", R"(/api/runs/([^/]+)/events)",
            [this](const server_request& req, server_response& res) {
              int64_t after = 0, limit = 1000;
              if (auto err = query_int(req, "after", after, 0, INT64_MAX))
                return send_error(res, *err);
              if (auto err = query_int(req, "limit", limit, 1, 10000))
                return send_error(res, *err);
              auto db = c.reader();
              if (!db)
                return send_error(res, store_down(db.error()));
              auto run = find_run(**db, req.matches[1]);
              if (fail(res, run))
                return;
              auto events = (*db)->events_after(run->run_id, after, static_cast<int32_t>(limit));
              if (!events)
                return send_error(res, store_down(events.error()));
              send_json(res, 200, {{"events", *events}});
            });
    svr.add("GET", R"(/api/runs/([^/]+)/events/stream)",
            [this](const server_request& req, server_response& res) { stream_events(req, res); });
    svr.add("GET", R"(/api/runs/([^/]+)/logs/([^/]+))",
            [this](const server_request& req, server_response& res) { logs(req, res); });
    svr.add("POST", "/api/schedules", [this](const server_request& req, server_response& res) {
      create_schedule(req, res);
    });
    svr.add("GET", "/api/schedules", [this](const server_request&, server_response& res) {
      auto db = c.reader();
      if (!db)
        return send_error(res, store_down(db.error()));
      auto all = (*db)->schedules();
      if (!all)
        return send_error(res, store_down(all.error()));
      send_json(res, 200, {{"schedules", *all}});
    });
    svr.add("GET", R"(/api/schedules/([^/]+))", [this](const server_request& req, server_response& res) {
      auto db = c.reader();
      if (!db)
        return send_error(res, store_down(db.error()));
      auto s = find_schedule(**db, req.matches[1]);
      if (fail(res, s))
        return;
      // Its events (claims, launches, skips, ...), a page at a time:
      // ?after=ID&limit=N (default 100, at most 1000); next_after pages on.
      int64_t after = 0, limit = 100;
      if (auto err = query_int(req, "after", after, 0, INT64_MAX))
        return send_error(res, *err);
      if (auto err = query_int(req, "limit", limit, 1, 1000))
        return send_error(res, *err);
      json j = *s;
      auto events = (*db)->schedule_events(s->id, after, static_cast<int32_t>(limit) + 1);
      if (!events)
        return send_error(res, store_down(events.error()));
      bool more = events->size() > static_cast<size_t>(limit);
      if (more)
        events->resize(static_cast<size_t>(limit));
      j["events"] = *events;
      j["next_after"] = more ? json(events->back().id) : json(nullptr);
      send_json(res, 200, j);
    });
    svr.add("POST", R"(/api/schedules/([^/]+)/trigger)",
            [this](const server_request& req, server_response& res) {
              json body = json::object();  // (an empty body is fine)
              if (!req.body.empty())
                if (auto err = parse_body(req, {"by"}, body))
                  return send_error(res, *err);
              std::string by;
              if (auto err = get_string(body, "by", by, false))
                return send_error(res, *err);
              auto run = c.trigger(req.matches[1], (by.empty() ? "the API" : by) + " (from "
                                                     + req.remote_addr + ")");
              if (fail(res, run))
                return;
              send_launched(res, *run);
            });
    svr.add("PATCH", R"(/api/schedules/([^/]+))",
              [this](const server_request& req, server_response& res) {
                patch_schedule(req, res);
              });
    svr.add("DELETE", R"(/api/schedules/([^/]+))",
               [this](const server_request& req, server_response& res) {
                 auto db = c.reader();
                 if (!db)
                   return send_error(res, store_down(db.error()));
                 auto gone = (*db)->delete_schedule(req.matches[1]);
                 if (!gone)
                   return send_error(res, store_down(gone.error()));
                 if (!*gone)
                   return send_error(res, {404, "not_found",
                                           "no schedule " + std::string(req.matches[1])});
                 c.poke_schedules();
                 res.status = 204;
               });
  }

  std::string metrics_text() {
    std::string out;
    auto counter = [&](const char* name, const char* help, int64_t v) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name
             + " " + std::to_string(v) + "\n";
    };
    auto gauge = [&](const char* name, const char* help, int64_t v) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name
             + " " + std::to_string(v) + "\n";
    };
    auto& m = c.metrics();
    if (auto db = c.reader()) {
      auto t0 = std::chrono::steady_clock::now();
      auto counts = (*db)->count_runs();
      auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (counts) {
        out += "# HELP troupe_runs Runs in the store, by status.\n# TYPE troupe_runs gauge\n";
        std::map<std::string, int64_t> by{{"queued", 0},    {"running", 0},   {"succeeded", 0},
                                          {"failed", 0},    {"timed_out", 0}, {"cancelled", 0}};
        for (auto& [status, n] : *counts)
          by[status] = n;
        for (auto& [status, n] : by)
          out += "troupe_runs{status=\"" + status + "\"} " + std::to_string(n) + "\n";
      }
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.6f", took);
      out += "# HELP troupe_store_read_seconds Time of the last store read behind this page.\n"
             "# TYPE troupe_store_read_seconds gauge\ntroupe_store_read_seconds "
             + std::string(buf) + "\n";
    }
    if (auto st = c.scheduler_stats()) {
      gauge("troupe_queue_depth", "Runs queued in this coordinator, waiting for a slot.",
            st->first);
      gauge("troupe_running_runs", "Runs this coordinator is running now.", st->second);
    }
    counter("troupe_launches_total", "Runs launched by this coordinator (API, schedules, adopted).",
            m.launches.load());
    counter("troupe_schedule_claims_total", "Schedule claims this coordinator took.",
            m.claims.load());
    counter("troupe_schedule_takeovers_total",
            "Schedule claims taken over from a coordinator whose lease expired.",
            m.takeovers.load());
    counter("troupe_schedule_launches_total", "Runs launched for schedule ticks.",
            m.schedule_launches.load());
    counter("troupe_schedule_skips_total", "Schedule ticks skipped (missed, or overlap forbid).",
            m.schedule_skips.load());
    counter("troupe_runs_adopted_total",
            "Queued runs of a lost coordinator taken over and started here.", m.adopted.load());
    counter("troupe_events_streamed_total", "Events sent over Server-Sent Events streams.",
            m.events_streamed.load());
    counter("troupe_http_requests_total", "HTTP requests received.", m.http_requests.load());
    auto hs = svr.stats();
    gauge("troupe_http_connections", "HTTP connections open now.", hs.open);
    gauge("troupe_http_streams", "HTTP connections streaming now (SSE, log follows).", hs.streams);
    counter("troupe_http_connections_total", "HTTP connections accepted.", hs.accepted);
    counter("troupe_http_refused_total",
            "HTTP connections refused with 503: over a connection limit.", hs.refused);
    counter("troupe_http_timeouts_total",
            "HTTP connections closed for a late header, body or write.", hs.timed_out);
    counter("troupe_http_busy_total", "HTTP requests refused with 503: every handler busy.",
            hs.busy);
    counter("troupe_http_too_large_total", "HTTP requests refused with 413 or 431.", hs.too_large);
    m.launch_to_start.render(out, "troupe_launch_to_start_seconds",
                             "Time from a launch to the start of the run's first stage (queue "
                             "wait included).");
    m.store_commit.render(out, "troupe_store_commit_seconds",
                          "Time from a launch's queued row sent to the store until committed.");
    c.gpu().metrics(out, c.metrics().gpu_lease_wait);
    return out;
  }

  void stream_events(const server_request& req, server_response& res) {
    int64_t after = 0;
    auto last = req.get_header_value("Last-Event-ID");
    if (!last.empty()) {
      if (auto err = parse_int("Last-Event-ID", last, after, 0, INT64_MAX))
        return send_error(res, *err);
    } else if (auto err = query_int(req, "after", after, 0, INT64_MAX)) {
      return send_error(res, *err);
    }
    std::string run_id = req.matches[1];
    {
      auto db = c.reader();
      if (!db)
        return send_error(res, store_down(db.error()));
      auto run = find_run(**db, run_id);
      if (fail(res, run))
        return;
      run_id = run->run_id;  // (a prefix or a folder's name named it)
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.content_type = "text/event-stream";
    res.stream = std::make_shared<event_stream>(c, run_id, after);
  }

  void logs(const server_request& req, server_response& res) {
    std::string run_id = req.matches[1];
    std::string stage = req.matches[2];
    auto stream = req.has_param("stream") ? req.get_param_value("stream") : "stdout";
    if (stream != "stdout" && stream != "stderr")
      return send_error(res, bad_request("stream", "'" + stream + "' is not stdout or stderr"));
    int64_t attempt = 0, offset = 0, follow = 0;
    if (auto err = query_int(req, "attempt", attempt, 1, 100000))
      return send_error(res, *err);
    if (auto err = query_int(req, "offset", offset, 0, INT64_MAX))
      return send_error(res, *err);
    if (auto err = query_int(req, "follow", follow, 0, 1))
      return send_error(res, *err);
    auto db = c.reader();
    if (!db)
      return send_error(res, store_down(db.error()));
    auto run = find_run(**db, run_id);
    if (fail(res, run))
      return;
    run_id = run->run_id;  // (a prefix or a folder's name named it)
    auto jobs = (*db)->jobs(run_id);
    if (!jobs)
      return send_error(res, store_down(jobs.error()));
    // The stage must be one of the run's (its name then names a file in the
    // run's logs/ folder: no other path can be reached).
    auto job = std::find_if(jobs->begin(), jobs->end(),
                            [&](const job_row& j) { return j.job == stage; });
    if (job == jobs->end())
      return send_error(res, {404, "not_found", "run " + run_id + " has no stage '" + stage + "'"});
    if (attempt == 0)
      attempt = std::max(1, job->attempts);
    if (attempt > std::max(1, job->attempts))
      return send_error(res, {404, "not_found",
                              "stage '" + stage + "' has no attempt " + std::to_string(attempt)});
    if (run->run_dir.empty())
      return send_error(res, {404, "not_found", "run " + run_id + " keeps no files "
                                                "(its pipeline has artifacts: store)"});
    auto rel = running_order::attempt_log(stage, static_cast<int32_t>(attempt),
                                          stream == "stdout" ? "stdout.log" : "stderr.log");
    auto path = run->run_dir + "/" + rel;
    res.set_header("X-Troupe-Attempt", std::to_string(attempt));
    if (follow == 0) {
      auto data = read_from(path, offset);
      res.set_header("X-Troupe-Next-Offset", std::to_string(offset + static_cast<int64_t>(data.size())));
      res.set_content(data, "text/plain; charset=utf-8");
      return;
    }
    res.content_type = "text/plain; charset=utf-8";
    res.stream = std::make_shared<log_follower>(c, path, run_id, stage,
                                                static_cast<int32_t>(attempt), offset);
  }

  std::optional<api_error> schedule_fields(const json& body, schedule_row& s, bool creating) {
    std::optional<api_error> err;
    if (creating) {
      err = get_string(body, "pipeline", s.pipeline, true);
      if (!err)
        err = get_string(body, "kind", s.kind, true);
    } else if (body.contains("pipeline") || body.contains("kind")) {
      return bad_request(body.contains("kind") ? "kind" : "pipeline",
                         "cannot be changed (delete the schedule and create another)");
    }
    std::string at, every, cron;
    if (!err)
      err = get_string(body, "at", at);
    if (!err)
      err = get_string(body, "every", every);
    if (!err)
      err = get_string(body, "cron", cron);
    if (err)
      return err;
    const std::map<std::string, std::string*> specs{{"once", &at}, {"interval", &every},
                                                    {"cron", &cron}};
    const std::map<std::string, const char*> field{{"once", "at"}, {"interval", "every"},
                                                   {"cron", "cron"}};
    if (specs.count(s.kind) == 0)
      return bad_request("kind", "'" + s.kind + "' is not one of once, interval, cron");
    for (auto& [kind, f] : field)
      if (kind != s.kind && body.contains(f))
        return bad_request(f, "does not apply to a '" + s.kind + "' schedule (it takes '"
                                + field.at(s.kind) + "')");
    if (body.contains(field.at(s.kind)))
      s.spec = *specs.at(s.kind);
    else if (creating)
      return bad_request(field.at(s.kind), "missing (a '" + s.kind + "' schedule needs it)");
    if (!err)
      err = get_string(body, "overlap", s.overlap);
    if (!err)
      err = get_string(body, "catch_up", s.catch_up);
    if (!err)
      err = get_int(body, "priority", s.priority, -1000, 1000);
    if (err)
      return err;
    if (body.contains("enabled")) {
      if (!body["enabled"].is_boolean())
        return bad_request("enabled", "must be true or false");
      s.enabled = body["enabled"].get<bool>();
    }
    if (body.contains("enable") || body.contains("env") || body.contains("params")) {
      launch_request lr;
      if (auto e = get_options(body, lr))
        return e;
      auto options = json::parse(s.options.empty() ? "{}" : s.options, nullptr, false);
      if (!options.is_object())
        options = json::object();
      if (body.contains("enable"))
        options["enable"] = lr.enable;
      if (body.contains("env"))
        options["env"] = lr.env;
      if (body.contains("params"))
        options["params"] = lr.params;
      s.options = options.dump();
    }
    return std::nullopt;
  }

  void create_schedule(const server_request& req, server_response& res) {
    json body;
    if (auto err = parse_body(req, schedule_keys, body))
      return send_error(res, *err);
    schedule_row s;
    if (auto err = schedule_fields(body, s, true))
      return send_error(res, *err);
    auto now = caf::make_timestamp();
    s.id = "sch-" + make_short_id();
    s.anchor = now;
    s.created_at = now;
    s.updated_at = now;
    auto ready = c.prepare_schedule(s);
    if (fail(res, ready))
      return;
    // The launch options are checked as a launch would check them.
    if (auto err = check_options(*ready))
      return send_error(res, *err);
    auto db = c.reader();
    if (!db)
      return send_error(res, store_down(db.error()));
    if (auto err = (*db)->create_schedule(*ready))
      return send_error(res, store_down(err));
    schedule_event_row ev;
    ev.ts = now;
    ev.schedule_id = ready->id;
    ev.coordinator = c.id();
    ev.kind = "created";
    ev.scheduled_for = ready->next_run_at;
    ev.message = "created; first tick " + (ready->next_run_at ? iso8601(*ready->next_run_at) : "none");
    (*db)->add_schedule_events({ev});
    c.poke_schedules();
    res.set_header("Location", "/api/schedules/" + ready->id);
    send_json(res, 201, *ready);
  }

  // A schedule's launch options, checked as each of its ticks will check them.
  std::optional<api_error> check_options(const schedule_row& s) {
    auto p = c.find_pipeline(s.pipeline);
    if (!p)
      return api_error{404, "not_found", "pipeline '" + s.pipeline + "' is not registered"};
    auto checked = check_launch(*p, launch_request_of(s), c.inheritance());
    if (!checked)
      return checked.error;
    return std::nullopt;
  }

  void patch_schedule(const server_request& req, server_response& res) {
    json body;
    if (auto err = parse_body(req, schedule_keys, body))
      return send_error(res, *err);
    auto db = c.reader();
    if (!db)
      return send_error(res, store_down(db.error()));
    auto found = find_schedule(**db, req.matches[1]);
    if (fail(res, found))
      return;
    auto s = *found;
    bool was_enabled = s.enabled;
    auto old_spec = s.spec;
    if (auto err = schedule_fields(body, s, false))
      return send_error(res, *err);
    auto now = caf::make_timestamp();
    s.updated_at = now;
    // A new timing, or a schedule enabled again, starts from now: ticks
    // that passed while it was off are not caught up.
    bool retime = s.spec != old_spec || (s.enabled && !was_enabled);
    if (retime)
      s.anchor = now;
    auto ready = c.prepare_schedule(s, s.spec != old_spec);
    if (fail(res, ready))
      return;
    if (!retime)
      ready->next_run_at = found->next_run_at;
    if (auto err = check_options(*ready))
      return send_error(res, *err);
    auto ok = (*db)->update_schedule(*ready);
    if (!ok)
      return send_error(res, store_down(ok.error()));
    if (!*ok)
      return send_error(res, {404, "not_found", "no schedule " + s.id});
    schedule_event_row ev;
    ev.ts = now;
    ev.schedule_id = s.id;
    ev.coordinator = c.id();
    ev.kind = "changed";
    ev.scheduled_for = ready->next_run_at;
    ev.message = "changed: " + req.body;
    (*db)->add_schedule_events({ev});
    c.poke_schedules();
    send_json(res, 200, *ready);
  }

  static std::string make_short_id() {
    static const char* hex = "0123456789abcdef";
    unsigned char bytes[8];
    int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::read(fd, bytes, sizeof bytes) != static_cast<ssize_t>(sizeof bytes)) {
      auto t = std::chrono::steady_clock::now().time_since_epoch().count();
      std::memcpy(bytes, &t, sizeof bytes);
    }
    if (fd >= 0)
      ::close(fd);
    std::string out;
    for (auto b : bytes) {
      out += hex[b >> 4];
      out += hex[b & 15];
    }
    return out;
  }
};

api_server::api_server(coordinator& c, const http_server_config& cfg)
  : impl_(std::make_unique<impl>(c, cfg)) {
}

api_server::~api_server() = default;

int api_server::bind(const std::string& host, int port, std::string& error) {
  return impl_->svr.bind(host, port, error);
}

void api_server::serve() {
  impl_->svr.serve();
}

void api_server::stop() {
  impl_->svr.stop();
}

} // namespace troupe
