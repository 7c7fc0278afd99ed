#include "runtime/api_server.hpp"

#include "actors/running_order.hpp"
#include "messages/errors.hpp"
#include "messages/json.hpp"
#include "runtime/coordinator.hpp"
#include "runtime/host_env.hpp"
#include "runtime/duration.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

constexpr size_t max_body = 1 << 20;  // 1 MiB

const std::set<std::string> schedule_keys{"pipeline", "kind",    "at",       "every",
                                          "cron",     "overlap", "catch_up", "enabled",
                                          "priority", "enable",  "env",      "params"};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", "application/json");
}

void send_error(httplib::Response& res, const api_error& e) {
  send_json(res, e.status, json{{"error", {{"code", e.code}, {"message", e.message}}}});
}

api_error bad_request(const std::string& field, const std::string& message) {
  return {400, "bad_request", field + ": " + message};
}

api_error store_down(const caf::error& err) {
  return {503, "store_unavailable", describe(err)};
}

// The body as a JSON object with only `allowed` keys; an error names what is wrong.
std::optional<api_error> parse_body(const httplib::Request& req, const std::set<std::string>& allowed,
                                    json& out) {
  if (req.body.empty())
    return bad_request("body", "empty; a JSON object was expected");
  out = json::parse(req.body, nullptr, false);
  if (out.is_discarded())
    return bad_request("body", "not valid JSON");
  if (!out.is_object())
    return bad_request("body", "a JSON object was expected");
  for (auto& [k, v] : out.items())
    if (allowed.count(k) == 0) {
      std::string names;
      for (auto& a : allowed)
        names += (names.empty() ? "" : ", ") + a;
      return bad_request(k, "unknown field (fields: " + names + ")");
    }
  return std::nullopt;
}

std::optional<api_error> get_string(const json& body, const char* key, std::string& out,
                                    bool required = false) {
  if (!body.contains(key)) {
    if (required)
      return bad_request(key, "missing");
    return std::nullopt;
  }
  if (!body[key].is_string())
    return bad_request(key, "must be a string");
  out = body[key].get<std::string>();
  if (required && out.empty())
    return bad_request(key, "must not be empty");
  return std::nullopt;
}

std::optional<api_error> get_int(const json& body, const char* key, int32_t& out, int32_t lo,
                                 int32_t hi) {
  if (!body.contains(key))
    return std::nullopt;
  if (!body[key].is_number_integer())
    return bad_request(key, "must be an integer");
  auto v = body[key].get<int64_t>();
  if (v < lo || v > hi)
    return bad_request(key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  out = static_cast<int32_t>(v);
  return std::nullopt;
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

// A query parameter as a non-negative integer; `fallback` when absent.
std::optional<api_error> query_int(const httplib::Request& req, const char* key, int64_t& out,
                                   int64_t lo, int64_t hi) {
  if (!req.has_param(key))
    return std::nullopt;
  auto text = req.get_param_value(key);
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
    return bad_request(key, "'" + text + "' is not an integer between " + std::to_string(lo)
                              + " and " + std::to_string(hi));
  out = v;
  return std::nullopt;
}

} // namespace

struct api_server::impl {
  coordinator& c;
  httplib::Server svr;

  explicit impl(coordinator& co) : c(co) {
    // SSE streams and log followers hold a thread each: a pool larger than
    // httplib's default of 8, and bounded.
    svr.new_task_queue = [] { return new httplib::ThreadPool(64); };
    svr.set_payload_max_length(max_body);
    svr.set_keep_alive_timeout(30);
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      ++c.metrics().http_requests;
      if (c.config().token.empty() || req.path.rfind("/api/", 0) != 0)
        return httplib::Server::HandlerResponse::Unhandled;
      auto auth = req.get_header_value("Authorization");
      const std::string scheme = "Bearer ";
      bool ok = auth.rfind(scheme, 0) == 0
                && constant_time_equal(auth.substr(scheme.size()), c.config().token);
      if (ok)
        return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, {401, "unauthorized",
                       auth.empty() ? "this coordinator needs 'Authorization: Bearer <token>'"
                                    : "the token is wrong"});
      return httplib::Server::HandlerResponse::Handled;
    });
    svr.set_error_handler(httplib::Server::HandlerWithResponse{[](const httplib::Request& req,
                             httplib::Response& res) -> httplib::Server::HandlerResponse {
      if (!res.body.empty() || res.is_chunked_content_provider_)
        return httplib::Server::HandlerResponse::Unhandled;
      if (res.status == 413)
        send_error(res, {413, "payload_too_large", "the body is over 1 MiB"});
      else if (res.status == 404)
        send_error(res, {404, "not_found", "no such endpoint: " + req.method + " " + req.path});
      else
        send_error(res, {res.status, res.status == 400 ? "bad_request" : "error",
                              "the request failed with HTTP status " + std::to_string(res.status)});
      return httplib::Server::HandlerResponse::Handled;
    }});
    svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          if (ep)
            std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(res, {500, "internal", what});
      });
    routes();
  }

  template <class T>
  bool fail(httplib::Response& res, const api_result<T>& r) {
    if (r)
      return false;
    send_error(res, r.error);
    return true;
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

  // The run with exactly this id, or an error.
  api_result<run_row> find_run(store& db, const std::string& id) {
    auto found = db.runs_by_prefix(id, 1);
    if (!found)
      return store_down(found.error());
    if (found->empty() || found->front().run_id != id)
      return api_error{404, "not_found", "no run " + id};
    return found->front();
  }

  void routes() {
    svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"status", "ok"},
                           {"coordinator", c.id()},
                           {"max_running", c.config().max_running},
                           {"pipelines", c.config().pipelines}});
    });
    svr.Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
      bool ok = c.ready();
      send_json(res, ok ? 200 : 503,
                {{"status", ok ? "ready" : "not ready"}, {"coordinator", c.id()}});
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
    svr.Get("/api/pipelines", [this](const httplib::Request&, httplib::Response& res) {
      json list = json::array();
      for (auto& p : c.pipelines()) {
        json stages = json::array();
        for (auto& s : p.stages)
          stages.push_back({{"name", s.name}, {"optional", s.optional}});
        list.push_back({{"name", p.name},
                        {"description", p.description},
                        {"file", p.file},
                        {"max_running", p.max_running},
                        {"resume", p.resume},
                        {"stages", stages}});
      }
      send_json(res, 200, {{"pipelines", list}});
    });
    svr.Post("/api/runs", [this](const httplib::Request& req, httplib::Response& res) {
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
      json j = *run;
      res.set_header("Location", "/api/runs/" + run->run_id);
      send_json(res, 201, {{"id", run->run_id},
                           {"status", to_string(run->status)},
                           {"pipeline", run->pipeline},
                           {"created_at", iso8601(run->created_at)},
                           {"run", j}});
    });
    svr.Get("/api/runs", [this](const httplib::Request& req, httplib::Response& res) {
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
      send_json(res, 200, {{"runs", *runs}, {"next_cursor", next}});
    });
    svr.Get(R"(/api/runs/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
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
      for (auto& s : doc["jobs"]) {
        s["node"] = c.id();  // the local node (the cluster names its workers here)
        auto it = stages.find(s["job"].get<std::string>());
        s["command"] = it != stages.end() ? it->second.value("command", "") : "";
        s["max_attempts"] = it != stages.end() ? it->second.value("max_attempts", 1) : 1;
      }
      send_json(res, 200, doc);
    });
    // (A content reader: `curl -X POST` sends no Content-Length, and a
    // cancel has no body to read.)
    svr.Post(R"(/api/runs/([^/]+)/cancel)",
             [this](const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader&) {
               auto run = c.cancel(req.matches[1]);
               if (fail(res, run))
                 return;
               send_json(res, 202, {{"id", run->run_id},
                                    {"status", to_string(run->status)},
                                    {"cancel_requested", true}});
             });
    svr.Post(R"(/api/runs/([^/]+)/rerun)",
             [this](const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& read) {
               std::string text;
               read([&](const char* data, size_t n) {
                 text.append(data, n);
                 return text.size() <= max_body;
               });
               if (text.size() > max_body)
                 return send_error(res, api_error{413, "too_large", "the body is over 1 MiB"});
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
    svr.Get(R"(/api/runs/([^/]+)/events)",
            [this](const httplib::Request& req, httplib::Response& res) {
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
    svr.Get(R"(/api/runs/([^/]+)/events/stream)",
            [this](const httplib::Request& req, httplib::Response& res) { stream_events(req, res); });
    svr.Get(R"(/api/runs/([^/]+)/logs/([^/]+))",
            [this](const httplib::Request& req, httplib::Response& res) { logs(req, res); });
    svr.Post("/api/schedules", [this](const httplib::Request& req, httplib::Response& res) {
      create_schedule(req, res);
    });
    svr.Get("/api/schedules", [this](const httplib::Request&, httplib::Response& res) {
      auto db = c.reader();
      if (!db)
        return send_error(res, store_down(db.error()));
      auto all = (*db)->schedules();
      if (!all)
        return send_error(res, store_down(all.error()));
      send_json(res, 200, {{"schedules", *all}});
    });
    svr.Get(R"(/api/schedules/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      auto db = c.reader();
      if (!db)
        return send_error(res, store_down(db.error()));
      auto s = find_schedule(**db, req.matches[1]);
      if (fail(res, s))
        return;
      json j = *s;
      auto events = (*db)->schedule_events(s->id, 0, 1000);
      if (events)
        j["events"] = *events;
      send_json(res, 200, j);
    });
    svr.Patch(R"(/api/schedules/([^/]+))",
              [this](const httplib::Request& req, httplib::Response& res) {
                patch_schedule(req, res);
              });
    svr.Delete(R"(/api/schedules/([^/]+))",
               [this](const httplib::Request& req, httplib::Response& res) {
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
    m.launch_to_start.render(out, "troupe_launch_to_start_seconds",
                             "Time from a launch to the start of the run's first stage (queue "
                             "wait included).");
    m.store_commit.render(out, "troupe_store_commit_seconds",
                          "Time from a launch's queued row sent to the store until committed.");
    return out;
  }

  void stream_events(const httplib::Request& req, httplib::Response& res) {
    int64_t after = 0;
    auto last = req.get_header_value("Last-Event-ID");
    if (!last.empty()) {
      char* end = nullptr;
      after = std::strtoll(last.c_str(), &end, 10);
      if (*end != '\0' || after < 0)
        return send_error(res, bad_request("Last-Event-ID", "'" + last + "' is not an event id"));
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
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto cursor = std::make_shared<int64_t>(after);
    auto quiet_since = std::make_shared<std::chrono::steady_clock::time_point>(
      std::chrono::steady_clock::now());
    res.set_chunked_content_provider(
      "text/event-stream", [this, run_id, cursor, quiet_since](size_t, httplib::DataSink& sink) {
        auto seen = c.bell().generation();
        auto db = c.reader();
        if (!db)
          return false;
        // The status first: once it is terminal, every event of the run is
        // committed (the last ones are in the same transaction).
        auto run = find_run(**db, run_id);
        if (!run)
          return false;
        bool ended = is_terminal(run->status);
        auto events = (*db)->events_after(run_id, *cursor, 500);
        if (!events)
          return false;
        // One write for all the events of one look: a client sees the
        // events of one commit together.
        std::string frames;
        for (auto& e : *events) {
          json j = e;
          frames += "id: " + std::to_string(e.id) + "\nevent: event\ndata: " + j.dump() + "\n\n";
        }
        if (!frames.empty()) {
          if (!sink.write(frames.data(), frames.size()))
            return false;
          *cursor = events->back().id;
          c.metrics().events_streamed += static_cast<int64_t>(events->size());
        }
        if (!events->empty()) {
          *quiet_since = std::chrono::steady_clock::now();
          return true;
        }
        if (ended) {
          json end = {{"run_id", run_id}, {"status", to_string(run->status)}};
          auto frame = "event: end\ndata: " + end.dump() + "\n\n";
          sink.write(frame.data(), frame.size());
          sink.done();
          return true;
        }
        // A comment now and then keeps proxies from closing a quiet stream
        // and finds a client that went away.
        if (std::chrono::steady_clock::now() - *quiet_since > std::chrono::seconds(15)) {
          static const std::string ping = ": keep-alive\n\n";
          if (!sink.write(ping.data(), ping.size()))
            return false;
          *quiet_since = std::chrono::steady_clock::now();
        }
        c.bell().wait(seen, std::chrono::milliseconds(250));
        return true;
      });
  }

  void logs(const httplib::Request& req, httplib::Response& res) {
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
      std::string data;
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd >= 0) {
        char buf[65536];
        ssize_t n;
        off_t at = static_cast<off_t>(offset);
        while ((n = ::pread(fd, buf, sizeof buf, at)) > 0) {
          data.append(buf, static_cast<size_t>(n));
          at += n;
        }
        ::close(fd);
      }
      res.set_header("X-Troupe-Next-Offset", std::to_string(offset + static_cast<int64_t>(data.size())));
      res.set_content(data, "text/plain; charset=utf-8");
      return;
    }
    auto at = std::make_shared<int64_t>(offset);
    auto attempt_no = static_cast<int32_t>(attempt);
    res.set_chunked_content_provider(
      "text/plain; charset=utf-8",
      [this, path, run_id, stage, attempt_no, at](size_t, httplib::DataSink& sink) {
        auto seen = c.bell().generation();
        // Whether the attempt had ended is read before the file: bytes
        // written before the end are then all in the file.
        bool ended = attempt_ended(run_id, stage, attempt_no);
        bool wrote = false;
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
          char buf[65536];
          ssize_t n;
          while ((n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(*at))) > 0) {
            if (!sink.write(buf, static_cast<size_t>(n))) {
              ::close(fd);
              return false;
            }
            *at += n;
            wrote = true;
          }
          ::close(fd);
        }
        if (!wrote && ended) {
          sink.done();
          return true;
        }
        if (!wrote)
          c.bell().wait(seen, std::chrono::milliseconds(200));
        return true;
      });
  }

  bool attempt_ended(const std::string& run_id, const std::string& stage, int32_t attempt) {
    auto db = c.reader();
    if (!db)
      return true;
    auto run = find_run(**db, run_id);
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

  void create_schedule(const httplib::Request& req, httplib::Response& res) {
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

  std::optional<api_error> check_options(const schedule_row& s) {
    auto p = c.find_pipeline(s.pipeline);
    if (!p)
      return api_error{404, "not_found", "pipeline '" + s.pipeline + "' is not registered"};
    auto options = json::parse(s.options, nullptr, false);
    if (options.is_object() && options.contains("enable"))
      for (auto& name : options["enable"]) {
        auto n = name.get<std::string>();
        auto it = std::find_if(p->stages.begin(), p->stages.end(),
                               [&](const stage_def& st) { return st.name == n; });
        if (it == p->stages.end() || !it->optional)
          return bad_request("enable", "'" + n + "' is not an optional stage of '" + p->name + "'");
      }
    // Its runs' parameters, checked now rather than at every tick.
    std::map<std::string, std::string> params;
    if (options.is_object() && options.contains("params") && options["params"].is_object())
      for (auto& [k, v] : options["params"].items())
        params[k] = v.is_string() ? v.get<std::string>() : v.dump();
    if (auto resolved = resolve_params(*p, params, own_environment()); !resolved)
      return bad_request("params", describe(resolved.error()));
    return std::nullopt;
  }

  void patch_schedule(const httplib::Request& req, httplib::Response& res) {
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
    auto ready = c.prepare_schedule(s);
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

api_server::api_server(coordinator& c) : impl_(std::make_unique<impl>(c)) {
}

api_server::~api_server() = default;

int api_server::bind(const std::string& host, int port, std::string& error) {
  if (port == 0) {
    int p = impl_->svr.bind_to_any_port(host);
    if (p <= 0)
      error = "cannot listen on " + host + " (any port): " + std::strerror(errno);
    return p > 0 ? p : -1;
  }
  if (!impl_->svr.bind_to_port(host, port)) {
    error = "cannot listen on " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    return -1;
  }
  return port;
}

void api_server::serve() {
  impl_->svr.listen_after_bind();
}

void api_server::stop() {
  impl_->svr.stop();
}

} // namespace troupe
